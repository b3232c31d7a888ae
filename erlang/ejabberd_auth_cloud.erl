%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud.erl
%%% Purpose : Authentication against Nextcloud (the JSXC app, Nextcloud's
%%%           own OCS API, or a JSON login API) and tokens (JSXC, TOTP), in
%%%           the VM
%%%
%%% ejabberd.yml:
%%%   auth_method: cloud
%%%   auth_cloud_url: "https://cloud.example.org/index.php/apps/ojsxc/ajax/externalApi.php"
%%%   auth_cloud_secret_file: "/etc/ejabberd/cloud-secret"
%%%
%%% The options are the cloudauth core's settings (auth_cloud_ + the
%%% setting's name): their defaults and the checks of their values live
%%% there, so every default here is undefined and only the options that are
%%% set are handed to the NIF (EUnit checks this list against the core's).
%%%
%%% The work is done by the cloudauth core (Rust) through a NIF: token
%%% checks are answered at once; cloud requests run on the NIF's own
%%% runtime and their answers arrive as messages, so the calling process
%%% waits in a receive (with a deadline) and no scheduler is ever held.
%%% With auth_cloud_roster_sync: true, a login also provisions the user's
%%% Nextcloud groups as shared roster groups (ejabberd_auth_cloud_roster).
%%%
%%% `ejabberdctl cloud_auth_doctor HOST` checks a host's set-up, one line
%%% per check as `cloudauth doctor` prints them (the same checks, from the
%%% core), plus what only the VM knows: auth_method, the NIF, the host's
%%% state. Exit status 0 when nothing is broken, 1 otherwise.
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud).

-behaviour(ejabberd_auth).

-export([start/1, stop/1, reload/1, plain_password_required/1,
	 store_type/1, use_cache/1, check_password/4, user_exists/2,
	 set_password/3, try_register/3, remove_user/2]).
-export([options/0, opt_type/1]).
%% Pure helpers, exported for the tests and the benchmark.
-export([nif_config/1, authzid_allowed/2, answer/2, trouble_line/5]).
%% The ejabberd commands cloud_auth_stats and cloud_auth_doctor.
-export([stats/1, forget/2, doctor/1, doctor_text/1]).
%% For the module's own processes (log sink, cluster cache writer).
-export([ensure_child/4, ensure_started_later/1, create_table/3, handle/1]).

-include("logger.hrl").
-include("ejabberd_commands.hrl").

%% How much longer than the NIF's reply budget a caller waits: the NIF
%% always replies within its budget, so nothing arrives after we gave up.
-define(REPLY_MARGIN, 1000).

%%%----------------------------------------------------------------------
%%% ejabberd_auth callbacks
%%%----------------------------------------------------------------------
-spec start(binary()) -> ok.
start(Host) ->
    ensure_started_later(ejabberd_auth_cloud_log),
    case ejabberd_config:get_option({auth_cloud_roster_sync, Host}) of
	true -> ejabberd_auth_cloud_roster:start(Host);
	_ -> ok
    end,
    case ejabberd_config:get_option({auth_cloud_cache_storage, Host}) of
	mnesia -> ejabberd_auth_cloud_cluster:start(Host);
	_ -> ok
    end,
    %% Once per node would do; registering again only replaces the entry.
    _ = ejabberd_commands:register_commands(?MODULE, commands()),
    install(Host),
    ejabberd_auth_cloud_sweep:start(Host).

-spec stop(binary()) -> ok.
stop(Host) ->
    _ = persistent_term:erase(handle_key(Host)),
    case [K || {{?MODULE, _} = K, _} <- persistent_term:get()] of
	[] -> ejabberd_commands:unregister_commands(commands());
	_ -> ok
    end,
    ok.

-spec reload(binary()) -> ok.
reload(Host) ->
    start(Host).

-spec plain_password_required(binary()) -> true.
plain_password_required(_Host) -> true.

-spec store_type(binary()) -> external.
store_type(_Host) -> external.

%% ejabberd's cache would keep a password and refuse the next, fresh token.
-spec use_cache(binary()) -> false.
use_cache(_Host) -> false.

-spec check_password(binary(), binary(), binary(), binary()) ->
			    {ets_cache:tag(), boolean()}.
check_password(User, AuthzId, Server, Password) ->
    case authzid_allowed(User, AuthzId) of
	false ->
	    ?WARNING_MSG("Refusing ~ts@~ts: authorization identity ~ts "
			 "differs from the authenticated user",
			 [User, Server, AuthzId]),
	    {nocache, false};
	true when Password == <<"">> ->
	    {nocache, false};
	true ->
	    Decision = decide(auth, User, Server, Password),
	    maybe_sync_roster(Decision, User, Server),
	    {nocache, answer(check_password, Decision)}
    end.

-spec user_exists(binary(), binary()) -> {ets_cache:tag(), boolean() | {error, db_failure}}.
user_exists(User, Server) ->
    Decision = decide(isuser, User, Server, undefined),
    {nocache, answer(user_exists, Decision)}.

%% Accounts live in the cloud.
-spec set_password(binary(), binary(), binary()) -> {ets_cache:tag(), {error, not_allowed}}.
set_password(_User, _Server, _Password) -> {nocache, {error, not_allowed}}.

-spec try_register(binary(), binary(), binary()) -> {ets_cache:tag(), {error, not_allowed}}.
try_register(_User, _Server, _Password) -> {nocache, {error, not_allowed}}.

-spec remove_user(binary(), binary()) -> {error, not_allowed}.
remove_user(_User, _Server) -> {error, not_allowed}.

%%%----------------------------------------------------------------------
%%% Options (top-level, per virtual host through host_config)
%%%----------------------------------------------------------------------
-spec opt_type(atom()) -> econf:validator().
opt_type(auth_cloud_backend) -> econf:binary();
opt_type(auth_cloud_url) -> econf:url([http, https]);
opt_type(auth_cloud_secret) -> econf:binary();
opt_type(auth_cloud_secret_file) -> econf:file(read);
opt_type(auth_cloud_auth_domain) -> econf:domain();
opt_type(auth_cloud_tokens) -> econf:list(econf:binary());
opt_type(auth_cloud_timeout) -> duration();
opt_type(auth_cloud_connect_timeout) -> duration();
opt_type(auth_cloud_concurrency) -> econf:non_neg_int();
opt_type(auth_cloud_queue) -> econf:non_neg_int();
opt_type(auth_cloud_cache_storage) -> econf:enum([none, memory, db, mnesia]);
opt_type(auth_cloud_cache_db) -> econf:binary();
opt_type(auth_cloud_cache_query_ttl) -> duration();
opt_type(auth_cloud_cache_verification_ttl) -> duration();
opt_type(auth_cloud_cache_unreachable_ttl) -> duration();
opt_type(auth_cloud_cache_revalidate) -> duration();
opt_type(auth_cloud_known_user_ttl) -> duration();
opt_type(auth_cloud_known_user_refresh) -> duration();
opt_type(auth_cloud_account_sweep) -> econf:either(econf:non_neg_int(), econf:binary());
opt_type(auth_cloud_cache_bcrypt_rounds) -> econf:either(econf:int(4, 31), econf:binary());
opt_type(auth_cloud_throttle_failures) -> econf:non_neg_int();
opt_type(auth_cloud_throttle_window) -> duration();
opt_type(auth_cloud_throttle_max_delay) -> duration();
opt_type(auth_cloud_roster_sync) -> econf:bool();
opt_type(auth_cloud_roster_groups_allow) -> econf:list(econf:binary());
opt_type(auth_cloud_roster_groups_deny) -> econf:list(econf:binary());
opt_type(auth_cloud_roster_max_members) -> econf:non_neg_int();
opt_type(auth_cloud_api_token_file) -> econf:file(read);
opt_type(auth_cloud_service_user) -> econf:binary();
opt_type(auth_cloud_service_password_file) -> econf:file(read);
opt_type(auth_cloud_bruteforce_max_attempts) -> econf:pos_int();
opt_type(auth_cloud_forward_client_address) -> econf:bool();
opt_type(auth_cloud_totp_seed_file) -> econf:file(read);
opt_type(auth_cloud_totp_secret_file) -> econf:file(read).

%% Seconds, or a number with a suffix (90s, 15m, 1h, 1d, 1w), or for
%% auth_cloud_timeout "CONNECT,TOTAL"; the core reads them.
duration() ->
    econf:either(econf:pos_int(), econf:binary()).

-spec options() -> [{atom(), undefined}].
options() ->
    [{Opt, undefined} ||
	Opt <- [auth_cloud_backend, auth_cloud_url, auth_cloud_secret,
		auth_cloud_secret_file, auth_cloud_auth_domain, auth_cloud_tokens,
		auth_cloud_timeout, auth_cloud_connect_timeout,
		auth_cloud_concurrency, auth_cloud_queue,
		auth_cloud_cache_storage, auth_cloud_cache_db,
		auth_cloud_cache_query_ttl, auth_cloud_cache_verification_ttl,
		auth_cloud_cache_unreachable_ttl, auth_cloud_cache_revalidate,
		auth_cloud_known_user_ttl, auth_cloud_known_user_refresh,
		auth_cloud_account_sweep,
		auth_cloud_cache_bcrypt_rounds,
		auth_cloud_throttle_failures, auth_cloud_throttle_window,
		auth_cloud_throttle_max_delay,
		auth_cloud_roster_sync, auth_cloud_roster_groups_allow,
		auth_cloud_roster_groups_deny, auth_cloud_roster_max_members,
		auth_cloud_api_token_file, auth_cloud_service_user,
		auth_cloud_service_password_file, auth_cloud_bruteforce_max_attempts,
		auth_cloud_forward_client_address,
		auth_cloud_totp_seed_file, auth_cloud_totp_secret_file]].

%%%----------------------------------------------------------------------
%%% ejabberd commands: ejabberdctl cloud_auth_stats HOST, cloud_auth_doctor HOST
%%%----------------------------------------------------------------------
-spec commands() -> [ejabberd_commands()].
commands() ->
    [#ejabberd_commands{name = cloud_auth_stats, tags = [accounts, statistics],
			desc = "Cloud authentication counters of a vhost (OpenMetrics text)",
			longdesc = "Decisions by operation, outcome and path (token, cache, "
			"backend, fallback, precheck, recent, throttled, withheld), backend request latency "
			"and failures, requests in flight and waiting per backend host, "
			"coalesced checks, throttling noticed.",
			module = ?MODULE, function = stats,
			args = [{host, binary}], args_example = [<<"example.org">>],
			args_desc = ["Virtual host using auth_method: cloud"],
			result = {stats, string}},
     #ejabberd_commands{name = cloud_auth_forget, tags = [accounts],
			desc = "Forget what cloud authentication holds for a user and close his sessions",
			longdesc = "Drops the user's cached password, known-user entry, remembered refusals and "
			"his shared roster digest (his next login re-reads his groups), then "
			"closes his sessions (ejabberd_sm:kick_user). For an admin who just "
			"disabled or deleted the account in Nextcloud.",
			module = ?MODULE, function = forget,
			args = [{user, binary}, {host, binary}],
			args_example = [<<"alice">>, <<"example.org">>],
			args_desc = ["User part of the JID", "Virtual host using auth_method: cloud"],
			result = {res, restuple}} | doctor_commands()].

%% The vhost's counters, or why there are none.
-spec stats(binary()) -> string().
stats(Host) ->
    case persistent_term:get(handle_key(Host), undefined) of
	undefined -> "# cloud authentication is not set up for this host\n# EOF\n";
	{Handle, _} -> binary_to_list(ejabberd_auth_cloud_nif:stats(Handle))
    end.

%% Drops the core's state for the user, then the roster digest (kept in
%% Mnesia by the roster module), then kicks the sessions.
-spec forget(binary(), binary()) -> {ok | error, string()}.
forget(User, Host) ->
    case persistent_term:get(handle_key(Host), undefined) of
	undefined ->
	    {error, "cloud authentication is not set up for this host"};
	{Handle, _} ->
	    case ejabberd_auth_cloud_nif:forget(Handle, User, Host) of
		{ok, Jid} ->
		    [LUser, LHost] = binary:split(Jid, <<"@">>),
		    _ = catch mnesia:dirty_delete(ejabberd_auth_cloud_roster,
						  {hash, {LUser, LHost}}),
		    Kicked = ejabberd_sm:kick_user(LUser, LHost),
		    ?INFO_MSG("cloud_auth_forget: ~ts forgotten, ~p session(s) closed",
			      [Jid, Kicked]),
		    {ok, io_lib:format("~ts: cached password, known-user entry and roster "
				       "digest dropped; ~p session(s) closed", [Jid, Kicked])};
		{error, Why} ->
		    {error, binary_to_list(Why)}
	    end
    end.

%%%----------------------------------------------------------------------
%%% Pure helpers
%%%----------------------------------------------------------------------

%% The options handed to the NIF: those set, from an option getter.
-spec nif_config(fun((atom()) -> term())) -> [{atom(), term()}].
nif_config(Get) ->
    [{Opt, V} || {Opt, _} <- options(), V <- [Get(Opt)], V /= undefined].

%% SASL PLAIN with an authorization identity: 23.01 binds the session to
%% the authzid when the module accepts, so only the user itself may be named.
-spec authzid_allowed(binary(), binary()) -> boolean().
authzid_allowed(_User, <<"">>) -> true;
authzid_allowed(User, User) -> true;
authzid_allowed(_User, _AuthzId) -> false.

%% What a callback answers for a decision.
-spec answer(check_password | user_exists, ejabberd_auth_cloud_nif:decision()) ->
		    boolean() | {error, db_failure}.
answer(_, {yes, _, _, _}) -> true;
answer(_, {no, _, _, _}) -> false;
answer(check_password, {T, _, _, _}) when T =:= trouble; T =:= own_trouble -> false;
answer(user_exists, {T, _, _, _}) when T =:= trouble; T =:= own_trouble -> {error, db_failure}.

%%%----------------------------------------------------------------------
%%% ejabberdctl cloud_auth_doctor HOST
%%%----------------------------------------------------------------------
-spec doctor_commands() -> [ejabberd_commands()].
doctor_commands() ->
    [#ejabberd_commands{
	name = cloud_auth_doctor, tags = [server],
	desc = "Check the cloud authentication set-up of a host",
	longdesc = "One line per check (fine, should change, or broken with what to do): "
		   "auth_method, the NIF, the options in effect, secret files, URL, DNS, TCP, TLS, "
		   "the backend's API and credentials, the clock, token formats. "
		   "Exit status 0 when nothing is broken, 1 otherwise.",
	module = ?MODULE, function = doctor,
	args = [{host, binary}], args_desc = ["Virtual host"],
	args_example = [<<"example.org">>],
	result = {res, restuple},
	result_desc = "The checks, one per line"}].

%% {ok, Text} when nothing failed, else {1, Text}: ejabberdctl prints Text
%% and exits with 0 or 1 (an error atom would add an "Error:" line).
-spec doctor(binary()) -> {ok | 1, string()}.
doctor(Host) ->
    Checks = doctor_checks(Host),
    Text = for_device(doctor_text(Checks)),
    case lists:keymember(fail, 1, Checks) of
	false -> {ok, Text};
	true -> {1, Text}
    end.

%% ejabberdctl prints the text with ~ts on its own standard output (the
%% group leader of this call). On a latin1 device (OTP 25's default for
%% erl -noinput) characters above 255 would come out as \x{2713}; their
%% UTF-8 bytes come out as they are, which a UTF-8 terminal shows right.
-spec for_device(string()) -> string().
for_device(Chars) ->
    case io:getopts() of
	Opts when is_list(Opts) ->
	    case lists:keyfind(encoding, 1, Opts) of
		{encoding, unicode} -> Chars;
		_ -> binary_to_list(unicode:characters_to_binary(Chars))
	    end;
	_ ->
	    binary_to_list(unicode:characters_to_binary(Chars))
    end.

%% The lines, then a summary line.
-spec doctor_text([{pass | warn | fail, binary()}]) -> string().
doctor_text(Checks) ->
    Failed = length([F || {fail, _} = F <- Checks]),
    Summary = case Failed of
		  0 -> io_lib:format("all ~B checks passed", [length(Checks)]);
		  _ -> io_lib:format("~B of ~B checks failed", [Failed, length(Checks)])
	      end,
    unicode:characters_to_list([lists:join("\n", [L || {_, L} <- Checks]), "\n", Summary]).

-spec check(pass | warn | fail, iodata(), iodata(), iodata()) -> {pass | warn | fail, binary()}.
check(pass, Name, Detail, _) ->
    {pass, unicode:characters_to_binary([<<"✓ "/utf8>>, Name, ": ", Detail])};
check(warn, Name, Detail, Fix) ->
    {warn, unicode:characters_to_binary([<<"! "/utf8>>, Name, ": ", Detail, <<" — "/utf8>>, Fix])};
check(fail, Name, Detail, Fix) ->
    {fail, unicode:characters_to_binary([<<"✗ "/utf8>>, Name, ": ", Detail, <<" — "/utf8>>, Fix])}.

doctor_checks(Host) ->
    Methods = try ejabberd_config:get_option({auth_method, Host})
	      catch _:_ -> [] end,
    Method = case lists:member(cloud, Methods) of
		 true ->
		     check(pass, "auth_method", "cloud", "");
		 false ->
		     check(fail, "auth_method",
			   io_lib:format("~p for ~ts: cloud authentication is not used", [Methods, Host]),
			   "set auth_method: cloud (top level, or for this host in host_config)")
	     end,
    Lib = ejabberd_auth_cloud_nif:library_path() ++ ".so",
    try ejabberd_auth_cloud_nif:noop() of
	ok when element(1, Method) == fail ->
	    %% Nothing of this host goes through the module: its options do not matter.
	    [Method, check(pass, "NIF", ["loaded from ", Lib], "")];
	ok ->
	    Nif = check(pass, "NIF", ["loaded from ", Lib], ""),
	    [Method, Nif | doctor_host(Host)]
    catch
	error:nif_not_loaded ->
	    [Method, check(fail, "NIF", ["not loaded: ", Lib],
			   "install it with erlang/install.sh; why it did not load is in ejabberd's log at start")]
    end.

%% The running state of the host, then the core's checks through it. A host
%% that is not set up is checked with its options as they are now.
doctor_host(Host) ->
    Get = fun(Opt) -> ejabberd_config:get_option({Opt, Host}) end,
    case persistent_term:get(handle_key(Host), undefined) of
	{Handle, _} ->
	    [check(pass, "set-up", "the host is set up (options as at start or the last reload_config)", "")
	     | doctor_nif(Handle, Host)];
	undefined ->
	    try ejabberd_auth_cloud_nif:new_host(nif_config(Get)) of
		{ok, {Handle, _, _}} ->
		    [check(fail, "set-up", "the host is not set up, though its options build now",
			   "ejabberdctl reload_config (the error at start is in ejabberd's log)")
		     | doctor_nif(Handle, Host)];
		{error, Why} ->
		    [check(fail, "set-up", ["the options cannot be used: ", Why],
			   "fix the auth_cloud_* option named, then ejabberdctl reload_config")]
	    catch
		Class:Reason ->
		    [check(fail, "set-up", io_lib:format("~p:~p", [Class, Reason]),
			   "see ejabberd's log")]
	    end
    end.

doctor_nif(Handle, Host) ->
    Ref = make_ref(),
    case ejabberd_auth_cloud_nif:doctor(Handle, Ref, Host) of
	{ok, BudgetMs} ->
	    receive
		{Ref, {error, Why}} ->
		    [check(fail, "doctor", Why, "see ejabberd's log")];
		{Ref, Checks} ->
		    Checks
	    after BudgetMs + ?REPLY_MARGIN ->
		    [check(fail, "doctor", "no answer from the NIF in time", "see ejabberd's log")]
	    end;
	{error, Why} ->
	    [check(fail, "doctor", Why, "see ejabberd's log")]
    end.

%%%----------------------------------------------------------------------
%%% Internal functions
%%%----------------------------------------------------------------------
handle_key(Host) -> {?MODULE, Host}.

%% The vhost's NIF handle and reply wait, for the module's own processes.
-spec handle(binary()) -> {reference(), timeout()} | undefined.
handle(Host) -> persistent_term:get(handle_key(Host), undefined).

or_default(undefined, Default) -> Default;
or_default(V, _) -> V.

%% Builds (or rebuilds) the host's NIF state. Never fails: a host that
%% cannot be set up refuses its logins and says why in the log; on reload
%% a broken configuration keeps the previous, working state.
-spec install(binary()) -> ok.
install(Host) ->
    Get = fun(Opt) -> ejabberd_config:get_option({Opt, Host}) end,
    try ejabberd_auth_cloud_nif:new_host(nif_config(Get)) of
	{ok, {Handle, BudgetMs, Warnings}} ->
	    lists:foreach(
	      fun(W) -> ?WARNING_MSG("Cloud authentication for ~ts: ~ts", [Host, W]) end,
	      Warnings),
	    persistent_term:put(handle_key(Host), {Handle, BudgetMs + ?REPLY_MARGIN}),
	    ?INFO_MSG("Cloud authentication for ~ts is set up (backend ~ts, url ~ts)",
		      [Host, or_default(Get(auth_cloud_backend), <<"jsxc">>),
		       or_default(Get(auth_cloud_url), <<"-">>)]);
	{error, Why} ->
	    setup_failed(Host, Why)
    catch
	error:nif_not_loaded ->
	    setup_failed(Host, io_lib:format("the NIF library ~ts.so is not loaded",
					     [ejabberd_auth_cloud_nif:library_path()]));
	Class:Reason ->
	    setup_failed(Host, io_lib:format("~p:~p", [Class, Reason]))
    end.

setup_failed(Host, Why) ->
    Kept = case persistent_term:get(handle_key(Host), undefined) of
	       undefined -> "its logins will fail";
	       _ -> "the previous settings stay in force"
	   end,
    ?ERROR_MSG("Cannot set up cloud authentication for ~ts: ~ts; ~ts", [Host, Why, Kept]).

%% After a login confirmed by a token, the cloud or a fresh cache entry (not
%% by the cache while the cloud is unreachable), sync the shared roster in
%% the background.
maybe_sync_roster({yes, Path, _, _}, User, Server) when Path /= fallback ->
    case ejabberd_config:get_option({auth_cloud_roster_sync, Server}) of
	true ->
	    case persistent_term:get(handle_key(Server), undefined) of
		undefined -> ok;
		Handle -> ejabberd_auth_cloud_roster:sync_async(Handle, User, Server)
	    end;
	_ ->
	    ok
    end;
maybe_sync_roster(_, _, _) ->
    ok.

%% Asks the core; always returns a decision, never raises (a crash report
%% could otherwise carry the password in its arguments).
-spec decide(auth | isuser, binary(), binary(), binary() | undefined) ->
		    ejabberd_auth_cloud_nif:decision().
decide(Op, User, Server, Password) ->
    Started = erlang:monotonic_time(microsecond),
    Decision = try persistent_term:get(handle_key(Server), undefined) of
		   undefined ->
		       {own_trouble, precheck, <<"not set up (see the error logged at start)">>, 0};
		   {Handle, Wait} ->
		       ask(Op, Handle, Wait, User, Server, Password)
	       catch Class:Reason ->
		       {own_trouble, precheck, iolist_to_binary(io_lib:format("~p:~p", [Class, Reason])), 0}
	       end,
    log_decision(Op, User, Server, Decision, erlang:monotonic_time(microsecond) - Started),
    Decision.

ask(auth, Handle, Wait, User, Server, Password) ->
    case ejabberd_auth_cloud_nif:check_token(Handle, User, Server, Password) of
	{ok, Decision} ->
	    Decision;
	{claim, Claim, IfNew, IfUsed} ->
	    ejabberd_auth_cloud_cluster:claim(Claim, IfNew, IfUsed,
					      <<User/binary, "@", Server/binary>>);
	{error, not_token} ->
	    case ejabberd_config:get_option({auth_cloud_cache_storage, Server}) of
		mnesia -> ejabberd_auth_cloud_cluster:lend(Handle, User, Server);
		_ -> ok
	    end,
	    await(Wait, fun(Ref) ->
				ejabberd_auth_cloud_nif:auth(Handle, Ref, User, Server, Password)
			end)
    end;
ask(isuser, Handle, Wait, User, Server, _) ->
    case ejabberd_config:get_option({auth_cloud_cache_storage, Server}) of
	mnesia -> ejabberd_auth_cloud_cluster:lend_known(Handle, User, Server);
	_ -> ok
    end,
    await(Wait, fun(Ref) -> ejabberd_auth_cloud_nif:is_user(Handle, Ref, User, Server) end).

%% Starts an asynchronous NIF call and waits for its {Ref, Result} only,
%% leaving every other message in the mailbox alone.
await(Wait, Start) ->
    Ref = make_ref(),
    case Start(Ref) of
	ok ->
	    receive
		{Ref, {error, Why}} -> {own_trouble, precheck, Why, 0};
		{Ref, Decision} -> Decision
	    after Wait ->
		    {own_trouble, precheck, <<"no answer from the NIF in time">>, 0}
	    end;
	{error, Why} ->
	    {own_trouble, precheck, Why, 0}
    end.

%% ejabberd logs every login's outcome itself; the path taken (token,
%% cloud, cache) is debug detail, except what an admin must see: trouble,
%% and logins admitted from the cache because the cloud could not be asked.
%% Withheld: not asked on purpose (a spent failure budget, a refused service
%% password waiting for its file), a state the core logged once already.
log_decision(Op, User, Server, {trouble, withheld, Detail, _}, Us) ->
    ?INFO_MSG("~ts ~ts@~ts: cannot tell, not asked (~B us): ~ts",
	      [Op, User, Server, Us, Detail]);
log_decision(Op, User, Server, {T, _, _, _} = D, Us)
  when T =:= trouble; T =:= own_trouble ->
    ?WARNING_MSG("~ts", [trouble_line(Op, User, Server, D, Us)]);
log_decision(Op, User, Server, {yes, fallback, _, _}, Us) ->
    ?WARNING_MSG("~ts ~ts@~ts: cloud unreachable, admitted by the password cache in ~B us",
		 [Op, User, Server, Us]);
log_decision(Op, User, Server, {Verdict, Path, <<"">>, _}, Us) ->
    ?DEBUG("~ts ~ts@~ts: ~ts via ~ts in ~B us", [Op, User, Server, Verdict, Path, Us]);
log_decision(Op, User, Server, {Verdict, Path, Detail, _}, Us) ->
    ?DEBUG("~ts ~ts@~ts: ~ts via ~ts (~ts) in ~B us",
	   [Op, User, Server, Verdict, Path, Detail, Us]).

%% A trouble's log line, worded as cloudauth's own log words it: this
%% server's own trouble (the NIF tells, Trouble::named_own; or the NIF
%% itself gave no answer) has no word on the backend, whose trouble it is not.
-spec trouble_line(atom(), binary(), binary(), ejabberd_auth_cloud_nif:decision(),
		   integer()) -> binary().
trouble_line(Op, User, Server, {own_trouble, Path, Detail, _}, Us) ->
    utf8(io_lib:format("~ts ~ts@~ts: cannot tell via ~ts in ~B us: this server's own trouble: ~ts",
		       [Op, User, Server, Path, Us, Detail]));
trouble_line(Op, User, Server, {trouble, Path, Detail, _}, Us) ->
    utf8(io_lib:format("~ts ~ts@~ts: backend trouble via ~ts in ~B us: ~ts",
		       [Op, User, Server, Path, Us, Detail])).

%% io_lib:format's ~ts makes characters of UTF-8 binaries (the core's texts
%% have arrows, JIDs may have any letter): iolist_to_binary/1 refuses those
%% above 255, so the line is encoded as UTF-8 instead.
-spec utf8(io_lib:chars()) -> binary().
utf8(Chars) ->
    unicode:characters_to_binary(Chars).

%% Runs Module:ensure_started/0 once this start is over. Not from here
%% directly: ejabberd_sup may be starting this very process (ejabberd_auth)
%% and would not answer start_child until done.
-spec ensure_started_later(module()) -> ok.
ensure_started_later(Module) ->
    {ok, _} = timer:apply_after(0, Module, ensure_started, []),
    ok.

%% Creates Module's Mnesia table Name with a disc copy on this node
%% (idempotent: ejabberd_mnesia adds the local copy when the table exists).
-spec create_table(module(), atom(), [atom()]) -> ok.
create_table(Module, Name, Fields) ->
    case ejabberd_mnesia:create(Module, Name,
				[{disc_copies, [node()]}, {attributes, Fields}]) of
	{atomic, ok} -> ok;
	Err -> ?ERROR_MSG("Cannot create the Mnesia table ~ts: ~p", [Name, Err])
    end.

%% Starts Module (a worker or a supervisor, by its start_link/0) under
%% ejabberd_sup unless it runs already; a failure is logged at Level,
%% naming What.
-spec ensure_child(module(), worker | supervisor, error | warning, string()) -> ok.
ensure_child(Module, Type, Level, What) ->
    Spec = #{id => Module, start => {Module, start_link, []},
	     restart => permanent, type => Type, modules => [Module],
	     shutdown => case Type of worker -> 1000; supervisor -> infinity end},
    case supervisor:start_child(ejabberd_sup, Spec) of
	{ok, _} -> ok;
	{error, {already_started, _}} -> ok;
	{error, already_present} -> _ = supervisor:restart_child(ejabberd_sup, Module), ok;
	{error, Why} when Level == error -> ?ERROR_MSG("~ts did not start: ~p", [What, Why]);
	{error, Why} -> ?WARNING_MSG("~ts did not start: ~p", [What, Why])
    end.
