%%%----------------------------------------------------------------------
%%% Runs inside a running ejabberd (loaded and called from a hidden node by
%%% bench/ejabberd/run.sh): calls per second of ejabberd_auth:check_password
%%% for tokens and cloud passwords, on a vhost with auth_method: cloud and
%%% one with auth_method: external (cloudauth, pool 2), and the floors: a
%%% no-op NIF call and a no-op asynchronous NIF round trip.
%%%----------------------------------------------------------------------
-module(cloudauth_bench).

-export([run/1]).

%% run(#{cloud_host, ext_host, creds => #{Host => [{User, Token, Password}]},
%%       procs, seconds, rounds, scenarios}) -> #{Scenario => median calls/s}
-spec run(map()) -> map().
run(#{rounds := Rounds, scenarios := Scenarios} = Opts) ->
    Samples = lists:foldl(
		fun(_, Acc) ->
			lists:foldl(
			  fun(S, Acc1) ->
				  Rate = measure(S, Opts),
				  maps:update_with(S, fun(L) -> [Rate | L] end, [Rate], Acc1)
			  end, Acc, Scenarios)
		end, #{}, lists:seq(1, Rounds)),
    maps:map(fun(_, L) -> median(L) end, Samples).

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).

%% One scenario: `procs` processes call as fast as they can for `seconds`;
%% every answer is checked (a wrong one crashes the run).
measure(Scenario, #{procs := Procs, seconds := Secs} = Opts) ->
    {Call, Creds} = call(Scenario, Opts),
    Self = self(),
    Until = erlang:monotonic_time(millisecond) + round(Secs * 1000),
    Start = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> Self ! {self(), loop(Call, Creds, I, Until, 0)} end)
	    || I <- lists:seq(1, Procs)],
    Total = lists:sum([receive {P, N} -> N end || P <- Pids]),
    Elapsed = erlang:monotonic_time(microsecond) - Start,
    Total * 1000000 / Elapsed.

loop(Call, Creds, I, Until, N) ->
    case N rem 16 == 0 andalso erlang:monotonic_time(millisecond) >= Until of
	true ->
	    N;
	false ->
	    true = Call(lists:nth(1 + (I + N) rem length(Creds), Creds)),
	    loop(Call, Creds, I, Until, N + 1)
    end.

%% The call of a scenario and the credentials it cycles through.
call(noop_nif, _) ->
    {fun(_) -> ok == ejabberd_auth_cloud_nif:noop() end, [none]};
call(noop_nif_async, _) ->
    {fun(_) ->
	     Ref = make_ref(),
	     ok = ejabberd_auth_cloud_nif:noop_async(Ref),
	     receive {Ref, ok} -> true after 5000 -> false end
     end, [none]};
call(cloud_token, #{cloud_host := H} = O) -> check(H, token, O);
call(module_token, #{cloud_host := H, creds := Creds}) ->
    %% The auth module's own callback, without ejabberd_auth around it.
    {fun({U, T, _}) ->
	     {nocache, Ok} = ejabberd_auth_cloud:check_password(U, <<>>, H, T),
	     Ok
     end, maps:get(H, Creds)};
call(ext_token, #{ext_host := H} = O) -> check(H, token, O);
call(cloud_password, #{cloud_host := H} = O) -> check(H, password, O);
call(ext_password, #{ext_host := H} = O) -> check(H, password, O).

check(Host, What, #{creds := Creds}) ->
    {fun({U, T, P}) ->
	     Secret = case What of token -> T; password -> P end,
	     ejabberd_auth:check_password(U, <<>>, Host, Secret)
     end, maps:get(Host, Creds)}.
