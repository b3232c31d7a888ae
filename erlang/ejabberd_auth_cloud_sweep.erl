%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud_sweep.erl
%%% Purpose : auth_cloud_account_sweep — the account sweep's timer in the
%%%           VM, and closing the sessions of the accounts it found gone
%%%
%%% Nextcloud cannot tell ejabberd that an account was deleted or disabled,
%%% so the core re-checks its known users every auth_cloud_account_sweep
%%% (NIF sweep/2, asynchronous) and drops what it held for those the cloud
%%% says no longer exist; what counts as gone is the core's. This process
%%% only keeps one timer per vhost and carries out the rest: it closes the
%%% departed users' sessions (ejabberd_sm:kick_user/2, as cloud_auth_forget
%%% does), takes them out of the provisioned shared roster groups and, with
%%% auth_cloud_roster_sync, re-reads the present users' groups so that
%%% someone who left a group in the cloud leaves it here without a login.
%%% One process per node, under ejabberd_sup. With cache storage mnesia the
%%% cluster's known users (ejabberd_auth_cloud_known) are lent to the NIF
%%% first, and each node sweeps all of them (nodes do not share a turn).
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_sweep).

-behaviour(gen_server).

-export([start/1, start_link/0, ensure_started/0, watch/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
	 code_change/3]).

-include("logger.hrl").

%% Timers by vhost, and the sweeps under way by their reply reference.
-record(state, {timers = #{} :: #{binary() => reference()},
		running = #{} :: #{reference() => binary()}}).

%%%----------------------------------------------------------------------
%%% API
%%%----------------------------------------------------------------------

%% Sweeps Host's known users from now on (when its sweep is on). Later, not
%% now: ejabberd_sup may be starting ejabberd_auth, which calls this.
-spec start(binary()) -> ok.
start(Host) ->
    {ok, _} = timer:apply_after(0, ?MODULE, watch, [Host]),
    ok.

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec ensure_started() -> ok.
ensure_started() ->
    ejabberd_auth_cloud:ensure_child(?MODULE, worker, error, "The account sweep").

-spec watch(binary()) -> ok.
watch(Host) ->
    ensure_started(),
    gen_server:cast(?MODULE, {watch, Host}).

%%%----------------------------------------------------------------------
%%% gen_server callbacks
%%%----------------------------------------------------------------------
-spec init([]) -> {ok, #state{}}.
init([]) ->
    {ok, #state{}}.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, ok, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, ok, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({watch, Host}, #state{timers = T} = State) ->
    case maps:is_key(Host, T) orelse lists:member(Host, maps:values(State#state.running)) of
	true -> {noreply, State};
	false -> {noreply, schedule(Host, State)}
    end;
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({sweep, Host}, #state{timers = T, running = R} = State) ->
    State1 = State#state{timers = maps:remove(Host, T)},
    case ejabberd_auth_cloud:handle(Host) of
	undefined ->
	    {noreply, State1};
	{Handle, _} ->
	    Ref = make_ref(),
	    Rows = case ejabberd_config:get_option({auth_cloud_cache_storage, Host}) of
		       mnesia -> ejabberd_auth_cloud_cluster:known_rows(Host);
		       _ -> []
		   end,
	    try ejabberd_auth_cloud_nif:sweep(Handle, Ref, Rows) of
		ok ->
		    {noreply, State1#state{running = R#{Ref => Host}}};
		{error, Why} ->
		    ?ERROR_MSG("Account sweep of ~ts did not start: ~ts", [Host, Why]),
		    {noreply, schedule(Host, State1)}
	    catch Class:Why ->
		    ?ERROR_MSG("Account sweep of ~ts did not start: ~p:~p", [Host, Class, Why]),
		    {noreply, schedule(Host, State1)}
	    end
    end;
handle_info({Ref, Result}, #state{running = R} = State) when is_map_key(Ref, R) ->
    Host = maps:get(Ref, R),
    State1 = State#state{running = maps:remove(Ref, R)},
    case Result of
	{Departed, Present} when is_list(Departed), is_list(Present) ->
	    lists:foreach(fun depart/1, Departed),
	    resync(Host, Present);
	{error, Why} ->
	    ?WARNING_MSG("Account sweep of ~ts: ~ts", [Host, Why])
    end,
    {noreply, schedule(Host, State1)};
handle_info(Info, State) ->
    ?WARNING_MSG("Unexpected message: ~p", [Info]),
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, _State) ->
    ok.

-spec code_change(term(), #state{}, term()) -> {ok, #state{}}.
code_change(_OldVsn, State, _Extra) ->
    {ok, State}.

%%%----------------------------------------------------------------------
%%% Internal functions
%%%----------------------------------------------------------------------

%% The next sweep of Host after its interval, read each time (a reload may
%% change it); none while it is off or the host has no cloud set-up.
-spec schedule(binary(), #state{}) -> #state{}.
schedule(Host, #state{timers = T} = State) ->
    Every = case ejabberd_auth_cloud:handle(Host) of
		undefined -> 0;
		{Handle, _} -> try ejabberd_auth_cloud_nif:sweep_every(Handle) catch _:_ -> 0 end
	    end,
    case Every of
	0 -> State;
	_ -> State#state{timers = T#{Host => erlang:send_after(Every, self(), {sweep, Host})}}
    end.

%% A user the cloud no longer has (the core dropped his cache row and
%% known-user entry already): his sessions closed, out of the shared roster.
-spec depart(binary()) -> ok.
depart(Jid) ->
    case binary:split(Jid, <<"@">>) of
	[User, Host] ->
	    Kicked = ejabberd_sm:kick_user(User, Host),
	    ?INFO_MSG("~ts: account gone from the backend; ~p session(s) closed", [Jid, Kicked]),
	    case ejabberd_config:get_option({auth_cloud_roster_sync, Host}) of
		true ->
		    try ejabberd_auth_cloud_roster:depart(User, Host)
		    catch Class:Why ->
			    ?WARNING_MSG("~ts not taken out of the shared roster: ~p:~p",
					 [Jid, Class, Why])
		    end;
		_ -> ok
	    end;
	_ ->
	    ok
    end.

%% With auth_cloud_roster_sync, the present users' groups re-read, one
%% after another in one process (the syncs' supervisor's child).
-spec resync(binary(), [binary()]) -> ok.
resync(_Host, []) -> ok;
resync(Host, Present) ->
    case {ejabberd_config:get_option({auth_cloud_roster_sync, Host}),
	  ejabberd_auth_cloud:handle(Host)} of
	{true, {_, _} = Handle} ->
	    Users = [U || J <- Present, [U, H] <- [binary:split(J, <<"@">>)], H == Host],
	    ejabberd_auth_cloud_roster:sync_async(Handle, Users, Host);
	_ ->
	    ok
    end.
