%%%----------------------------------------------------------------------
%%% EUnit tests of ejabberd_auth_cloud's own logic and of the NIF in a
%%% plain VM (no ejabberd needed): rebar3 eunit
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SECRET, <<"eunit-secret">>).

%%%----------------------------------------------------------------------
%%% Pure helpers
%%%----------------------------------------------------------------------
%% ejabberd's getter for a vhost that set `Set` (ejabberd fills in the
%% module's defaults, all undefined, for the rest).
getter(Set) ->
    Defaults = maps:from_list(ejabberd_auth_cloud:options()),
    All = maps:merge(Defaults, Set),
    fun(Opt) -> maps:get(Opt, All) end.

nif_config_passes_only_what_is_set_test() ->
    C = ejabberd_auth_cloud:nif_config(
	  getter(#{auth_cloud_url => <<"https://c/x">>,
		   auth_cloud_secret_file => <<"/etc/s">>,
		   auth_cloud_cache_storage => db})),
    ?assertEqual([{auth_cloud_url, <<"https://c/x">>},
		  {auth_cloud_secret_file, <<"/etc/s">>},
		  {auth_cloud_cache_storage, db}],
		 C),
    ?assertEqual([], ejabberd_auth_cloud:nif_config(getter(#{}))).

%% Defaults live in the core only: the module declares none of its own.
options_have_no_defaults_of_their_own_test() ->
    ?assertEqual([], [O || {O, D} <- ejabberd_auth_cloud:options(), D /= undefined]).

%% Every option has a validator clause (econf itself may be absent here).
every_option_has_a_validator_test() ->
    Missing = [O || {O, _} <- ejabberd_auth_cloud:options(),
		    try ejabberd_auth_cloud:opt_type(O), false
		    catch error:function_clause:St -> no_clause_for(St);
			  _:_ -> false
		    end],
    ?assertEqual([], Missing).

authzid_test() ->
    ?assert(ejabberd_auth_cloud:authzid_allowed(<<"alice">>, <<"">>)),
    ?assert(ejabberd_auth_cloud:authzid_allowed(<<"alice">>, <<"alice">>)),
    ?assertNot(ejabberd_auth_cloud:authzid_allowed(<<"alice">>, <<"bob">>)).

answer_test() ->
    A = fun ejabberd_auth_cloud:answer/2,
    ?assert(A(check_password, {yes, token, <<>>, 1})),
    ?assertNot(A(check_password, {no, backend, <<>>, 1})),
    ?assertNot(A(check_password, {trouble, backend, <<"down">>, 1})),
    ?assert(A(user_exists, {yes, backend, <<>>, 1})),
    ?assertNot(A(user_exists, {no, backend, <<>>, 1})),
    ?assertEqual({error, db_failure}, A(user_exists, {trouble, backend, <<"down">>, 1})),
    ?assertNot(A(check_password, {own_trouble, backend, <<"queue full">>, 1})),
    ?assertEqual({error, db_failure}, A(user_exists, {own_trouble, precheck, <<"no answer">>, 1})).

%% The VM's trouble line says whose, as cloudauth's log does.
trouble_line_test() ->
    L = fun(D) -> ejabberd_auth_cloud:trouble_line(auth, <<"alice">>, <<"example.org">>, D, 7) end,
    ?assertEqual(<<"auth alice@example.org: backend trouble via backend in 7 us: down">>,
		 L({trouble, backend, <<"down">>, 1})),
    ?assertEqual(<<"auth alice@example.org: cannot tell via backend in 7 us: "
		   "this server's own trouble: queue full">>,
		 L({own_trouble, backend, <<"queue full">>, 1})),
    %% The core's texts and JIDs are UTF-8, characters above 255 included.
    ?assertEqual(<<"auth alice@example.org: backend trouble via backend in 7 us: "
		   "Personal settings \342\206\222 Security">>,
		 L({trouble, backend, <<"Personal settings \342\206\222 Security">>, 1})),
    ?assertEqual(<<"auth j\303\274rgen@example.org: cannot tell via precheck in 7 us: "
		   "this server's own trouble: x">>,
		 ejabberd_auth_cloud:trouble_line(auth, <<"j\303\274rgen">>, <<"example.org">>,
						  {own_trouble, precheck, <<"x">>, 1}, 7)).

no_clause_for([{ejabberd_auth_cloud, opt_type, _, _} | _]) -> true;
no_clause_for(_) -> false.

%%%----------------------------------------------------------------------
%%% The NIF
%%%----------------------------------------------------------------------

%% A JSXC token, made here independently of the Rust code.
mint(User, Domain, Expiry) ->
    <<KeyId:2/binary, _/binary>> = crypto:hash(sha256, ?SECRET),
    Msg = <<0, KeyId/binary, Expiry:32, User/binary, "@", Domain/binary>>,
    <<Mac:16/binary, _/binary>> = crypto:mac(hmac, sha256, ?SECRET, Msg),
    B64 = base64:encode(<<0, Mac/binary, KeyId/binary, Expiry:32>>),
    NoPad = binary:replace(B64, <<"=">>, <<>>, [global]),
    << <<(case C of $O -> $-; $I -> $$; $l -> $%; _ -> C end)>> || <<C>> <= NoPad >>.

now_s() -> erlang:system_time(second).

%% A TCP port that accepts connections and never answers.
blackhole() ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {backlog, 1024}]),
    {ok, Port} = inet:port(L),
    Pid = spawn(fun() -> hold(L, []) end),
    ok = gen_tcp:controlling_process(L, Pid),
    {Port, Pid}.

hold(L, Conns) ->
    case gen_tcp:accept(L, 100) of
	{ok, S} -> hold(L, [S | Conns]);
	{error, timeout} -> receive stop -> ok after 0 -> hold(L, Conns) end;
	{error, _} -> ok
    end.

%% A TCP port with nothing listening.
dead_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    Port.

%% A host whose deadlines are both Seconds (a binary, decimals allowed).
host(Url, Seconds) ->
    C = ejabberd_auth_cloud:nif_config(
	  getter(#{auth_cloud_url => Url, auth_cloud_secret => ?SECRET,
		   auth_cloud_timeout => Seconds})),
    {ok, {H, Budget, []}} = ejabberd_auth_cloud_nif:new_host(C),
    {H, Budget}.

url(Port) -> iolist_to_binary(io_lib:format("http://127.0.0.1:~B/x", [Port])).

await(Ref, Ms) ->
    receive {Ref, R} -> R after Ms -> timeout end.

nif_test_() ->
    case code:ensure_loaded(ejabberd_auth_cloud_nif) of
	{module, _} ->
	    {timeout, 60,
	     [fun options_match_the_core_schema/0, fun new_host_errors/0, fun tokens/0, fun trouble_is_a_reply/0,
	      fun async_waits_hold_no_scheduler/0, fun panics/0, fun noop/0,
	      fun roster_plan_terms/0, fun doctor/0, fun mnesia_storage/0]};
	{error, Why} ->
	    ?debugFmt("NIF not loadable (~p): skipped", [Why]),
	    []
    end.

%% The core's checks through the NIF: the options in effect (never the
%% secret), nothing listening at the URL, the token format; then the text
%% ejabberdctl prints.
doctor() ->
    {H, _} = host(url(dead_port()), <<"1">>),
    Ref = make_ref(),
    {ok, BudgetMs} = ejabberd_auth_cloud_nif:doctor(H, Ref, <<"example.org">>),
    Checks = await(Ref, BudgetMs + 1000),
    ?assert(is_list(Checks)),
    Lines = [L || {_, L} <- Checks],
    Line = fun(Prefix) -> [L || L <- Lines, binary:match(L, Prefix) =:= {0, byte_size(Prefix)}] end,
    ?assertMatch([_], Line(<<"✓ options: backend jsxc, url http://127.0.0.1:"/utf8>>)),
    ?assertMatch([_], Line(<<"✗ TCP: connection refused"/utf8>>)),
    ?assertMatch([_], Line(<<"✓ token jsxc: "/utf8>>)),
    ?assertEqual(nomatch, binary:match(iolist_to_binary(Lines), ?SECRET)),
    ?assertEqual([fail], lists:usort([S || {S, _} <- Checks, S =/= pass])),
    Text = ejabberd_auth_cloud:doctor_text(Checks),
    ?assertMatch({match, _}, re:run(Text, "1 of [0-9]+ checks failed$", [unicode])),
    ?assertEqual("✓ a\nall 1 checks passed",
		 ejabberd_auth_cloud:doctor_text([{pass, <<"✓ a"/utf8>>}])).

%% auth_cloud_cache_storage: mnesia builds (the port program refuses it);
%% rows and known users are lent in the shape ejabberd_auth_cloud_cluster
%% reads them; with the cloud down and no row lent, a password is trouble,
%% not yes, and isuser is yes only for a known user lent.
mnesia_storage() ->
    C = ejabberd_auth_cloud:nif_config(
	  getter(#{auth_cloud_url => url(dead_port()), auth_cloud_secret => ?SECRET,
		   auth_cloud_timeout => <<"1">>, auth_cloud_cache_storage => mnesia})),
    {ok, {H, Budget, []}} = ejabberd_auth_cloud_nif:new_host(C),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:set_cache_writer(self())),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:cache_lend(H, <<"a">>, <<"example.org">>, none)),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:cache_lend(H, <<"a">>, <<"example.org">>,
							 {<<"$2b$04$x">>, 1, 2, 3})),
    Ref = make_ref(),
    ok = ejabberd_auth_cloud_nif:auth(H, Ref, <<"a">>, <<"example.org">>, <<"pw">>),
    ?assertMatch({trouble, backend, _, _}, await(Ref, Budget + 1000)),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:cache_lend(H, <<"a">>, <<"example.org">>, bad)),
    %% Known users: an entry lent from Mnesia (confirmed a minute ago on
    %% another node) answers isuser yes with the cloud down; none lent,
    %% cannot tell.
    IsUser = fun() ->
		     R = make_ref(),
		     ok = ejabberd_auth_cloud_nif:is_user(H, R, <<"a">>, <<"example.org">>),
		     await(R, Budget + 1000)
	     end,
    ?assertEqual(ok, ejabberd_auth_cloud_nif:known_lend(H, <<"a">>, <<"example.org">>, now_s() - 60)),
    ?assertMatch({yes, cache, <<"known user">>, _}, IsUser()),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:known_lend(H, <<"a">>, <<"example.org">>, none)),
    ?assertMatch({trouble, backend, _, _}, IsUser()),
    ?assertEqual(ok, ejabberd_auth_cloud_nif:known_lend(H, <<"a">>, <<"example.org">>, bad)),
    %% forget drops both in the cluster: deletions sent to the writer.
    ?assertEqual({ok, <<"a@example.org">>}, ejabberd_auth_cloud_nif:forget(H, <<"a">>, <<"example.org">>)),
    ?assertEqual(ok, receive {cloudauth_cache, <<"a@example.org">>, none} -> ok after 2000 -> timeout end),
    ?assertEqual(ok, receive {cloudauth_known, <<"a@example.org">>, none} -> ok after 2000 -> timeout end),
    %% A valid JSXC token is no one-time token: decided at once, no claim.
    Valid = mint(<<"a">>, <<"example.org">>, now_s() + 600),
    ?assertMatch({ok, {yes, token, _, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"a">>, <<"example.org">>, Valid)).

%% The module's option list is the core's settings schema: same names, and
%% the core has the defaults (checked above: the module has none).
options_match_the_core_schema() ->
    Core = lists:sort([binary_to_atom(N) || {N, _} <- ejabberd_auth_cloud_nif:schema()]),
    Module = lists:sort([O || {O, _} <- ejabberd_auth_cloud:options()]),
    ?assertEqual(Core, Module),
    Defaults = maps:from_list(ejabberd_auth_cloud_nif:schema()),
    ?assertEqual(<<"5,10">>, maps:get(<<"auth_cloud_timeout">>, Defaults)),
    ?assertEqual(<<"jsxc">>, maps:get(<<"auth_cloud_backend">>, Defaults)).

new_host_errors() ->
    C = [{auth_cloud_url, <<"http://c">>}, {auth_cloud_secret, ?SECRET}],
    ?assertMatch({ok, _}, ejabberd_auth_cloud_nif:new_host(C)),
    Set = fun(K, V) -> lists:keystore(K, 1, C, {K, V}) end,
    ?assertMatch({error, <<"invalid url", _/binary>>},
		 ejabberd_auth_cloud_nif:new_host(Set(auth_cloud_url, <<"not a url">>))),
    ?assertMatch({error, <<"backend jsxc needs secret", _/binary>>},
		 ejabberd_auth_cloud_nif:new_host(lists:keydelete(auth_cloud_secret, 1, C))),
    ?assertMatch({error, _}, ejabberd_auth_cloud_nif:new_host(
			       [{auth_cloud_secret_file, <<"/nonexistent/secret">>} | C])),
    ?assertMatch({error, <<"invalid backend", _/binary>>},
		 ejabberd_auth_cloud_nif:new_host(Set(auth_cloud_backend, <<"ldap">>))),
    ?assertMatch({error, <<"unknown option", _/binary>>},
		 ejabberd_auth_cloud_nif:new_host([{auth_cloud_nonsense, 1} | C])),
    ?assertError(_, ejabberd_auth_cloud_nif:new_host(#{url => <<"http://c">>})).

tokens() ->
    {H, _} = host(url(dead_port()), <<"1">>),
    Valid = mint(<<"alice">>, <<"example.org">>, now_s() + 600),
    ?assertMatch({ok, {yes, token, _, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"alice">>, <<"example.org">>, Valid)),
    ?assertMatch({ok, {no, token, _, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"bob">>, <<"example.org">>, Valid)),
    Expired = mint(<<"alice">>, <<"example.org">>, now_s() - 1),
    ?assertMatch({ok, {no, token, <<"token expired">>, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"alice">>, <<"example.org">>, Expired)),
    NonAscii = mint(<<"jürgen"/utf8>>, <<"example.org">>, now_s() + 600),
    ?assertMatch({ok, {yes, token, _, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"jürgen"/utf8>>, <<"example.org">>, NonAscii)),
    ?assertEqual({error, not_token},
		 ejabberd_auth_cloud_nif:check_token(H, <<"alice">>, <<"example.org">>, <<"password">>)),
    ?assertMatch({ok, {no, precheck, _, _}},
		 ejabberd_auth_cloud_nif:check_token(H, <<"alice">>, <<"example.org">>, <<255, 254>>)),
    %% A 100 MB "password" is refused by its length, without being copied:
    %% the call stays far below a normal scheduler's 1 ms budget.
    Huge = binary:copy(<<"x">>, 100 * 1024 * 1024),
    {Us, Refused} = timer:tc(fun() ->
				     ejabberd_auth_cloud_nif:check_token(H, <<"alice">>,
									 <<"example.org">>, Huge)
			     end),
    ?assertMatch({ok, {no, precheck, _, _}}, Refused),
    ?assert(Us < 1000).

trouble_is_a_reply() ->
    {H, Budget} = host(url(dead_port()), <<"1">>),
    Ref = make_ref(),
    ok = ejabberd_auth_cloud_nif:auth(H, Ref, <<"alice">>, <<"example.org">>, <<"pw">>),
    ?assertMatch({trouble, backend, <<"connection refused", _/binary>>, _}, await(Ref, Budget)),
    Ref2 = make_ref(),
    ok = ejabberd_auth_cloud_nif:is_user(H, Ref2, <<"alice">>, <<"example.org">>),
    ?assertMatch({trouble, backend, _, _}, await(Ref2, Budget)).

%% 200 requests to a cloud that never answers: every call returns at once,
%% every caller gets its trouble reply (the backend's or the queue's) by the budget, and meanwhile a
%% process that needs a scheduler every millisecond is not delayed.
async_waits_hold_no_scheduler() ->
    {Port, Hole} = blackhole(),
    {H, Budget} = host(url(Port), <<"1.5">>),
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    Callers = [spawn(fun() ->
			     Ref = make_ref(),
			     %% 200 users (one user's 200 different passwords
			     %% would meet the guessing throttle)
			     ok = ejabberd_auth_cloud_nif:auth(H, Ref, integer_to_binary(I),
							       <<"d">>, <<"pw">>),
			     Self ! {done, self(), await(Ref, Budget + 1000)}
		     end) || I <- lists:seq(1, 200)],
    Ticks = ticker_delays(50),
    ?assert(lists:max(Ticks) < 50),
    Results = [receive {done, P, R} -> R after Budget + 2000 -> timeout end || P <- Callers],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    %% The 8 in flight run out of time (the backend's trouble); the rest
    %% find no place among them in time (this server's own queue).
    Backend = [R || {trouble, backend, _, _} = R <- Results],
    Own = [D || {own_trouble, backend, D, _} <- Results],
    ?assertEqual(200, length(Backend) + length(Own)),
    ?assertEqual([], [D || D <- Own, binary:match(D, <<"could not start within">>) =:= nomatch]),
    ?assert(Elapsed < Budget + 1000),
    Hole ! stop.

%% Runs N 1 ms sleeps; how late each woke up (ms).
ticker_delays(N) ->
    [begin
	 T = erlang:monotonic_time(microsecond),
	 timer:sleep(1),
	 (erlang:monotonic_time(microsecond) - T) div 1000 - 1
     end || _ <- lists:seq(1, N)].

panics() ->
    ?assertError(nif_panicked, ejabberd_auth_cloud_nif:selftest_panic()),
    Ref = make_ref(),
    ok = ejabberd_auth_cloud_nif:selftest_panic_async(Ref),
    ?assertMatch({error, <<"panic in the NIF: ", _/binary>>}, await(Ref, 5000)),
    %% Still working afterwards.
    ?assertEqual(ok, ejabberd_auth_cloud_nif:noop()).

noop() ->
    Ref = make_ref(),
    ok = ejabberd_auth_cloud_nif:noop_async(Ref),
    ?assertEqual(ok, await(Ref, 5000)).

%% The core's plan through the NIF: terms in, actions out, in plan order.
roster_plan_terms() ->
    A = {<<"alice">>, <<"d">>}, B = {<<"bob">>, <<"d">>}, C = {<<"carol">>, <<"d">>},
    Groups = [{<<"team">>, <<"Team">>, [A, B]}, {<<"new">>, <<"New">>, [A]}],
    Names = [{A, <<"Alice">>}, {B, <<"Bob">>}],
    Members = [{<<"team">>, [A, C]}],
    LoginGroups = [<<"team">>, <<"old">>],
    Known = [{A, <<"Alice">>}],
    ?assertEqual([{create_group, <<"new">>, <<"New">>},
		  {set_name, B, <<"Bob">>},
		  {add_member, <<"new">>, A},
		  {add_member, <<"team">>, B},
		  {remove_member, <<"team">>, C},
		  {remove_member, <<"old">>, A}],
		 ejabberd_auth_cloud_nif:roster_plan(A, Groups, Names, Members, LoginGroups, Known)).
