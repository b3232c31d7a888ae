%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud_log.erl
%%% Purpose : The cloudauth core's log events in ejabberd's log
%%%
%%% The NIF sends each event of the Rust core (cache trouble, backend
%%% warnings such as a missing Nextcloud service account or a throttling
%%% Nextcloud) as {cloudauth_log, Level, Text} to this process, which logs it
%%% with ejabberd's logger at that level. One per node, under ejabberd_sup,
%%% started by ejabberd_auth_cloud:start/1.
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_log).

-behaviour(gen_server).

-export([start_link/0, ensure_started/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
	 code_change/3]).

-include("logger.hrl").

%%%----------------------------------------------------------------------
%%% gen_server callbacks
%%%----------------------------------------------------------------------
-spec init([]) -> {ok, undefined}.
init([]) ->
    %% try, not catch Expr: OTP 29 deprecates the latter.
    %% The NIF answers {ok, ok} (a Rust Ok(ok)).
    try ejabberd_auth_cloud_nif:set_log_sink(self()) of
	{ok, ok} -> ok;
	Other -> ?WARNING_MSG("cloudauth's own log events stay unlogged: ~p", [Other])
    catch
	Class:Reason ->
	    ?WARNING_MSG("cloudauth's own log events stay unlogged: ~p:~p", [Class, Reason])
    end,
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), undefined) -> {reply, ok, undefined}.
handle_call(_Request, _From, State) ->
    {reply, ok, State}.

-spec handle_cast(term(), undefined) -> {noreply, undefined}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), undefined) -> {noreply, undefined}.
handle_info({cloudauth_log, error, Text}, State) ->
    ?ERROR_MSG("cloudauth: ~ts", [Text]), {noreply, State};
handle_info({cloudauth_log, warning, Text}, State) ->
    ?WARNING_MSG("cloudauth: ~ts", [Text]), {noreply, State};
handle_info({cloudauth_log, info, Text}, State) ->
    ?INFO_MSG("cloudauth: ~ts", [Text]), {noreply, State};
handle_info({cloudauth_log, debug, Text}, State) ->
    ?DEBUG("cloudauth: ~ts", [Text]), {noreply, State};
handle_info(Info, State) ->
    ?WARNING_MSG("Unexpected message: ~p", [Info]),
    {noreply, State}.

-spec terminate(term(), undefined) -> ok.
terminate(_Reason, _State) ->
    ok.

-spec code_change(term(), undefined, term()) -> {ok, undefined}.
code_change(_OldVsn, State, _Extra) ->
    {ok, State}.

%%%----------------------------------------------------------------------
%%% API
%%%----------------------------------------------------------------------
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Starts the sink under ejabberd_sup unless it runs already.
-spec ensure_started() -> ok.
ensure_started() ->
    ejabberd_auth_cloud:ensure_child(?MODULE, worker, warning, "cloudauth's log sink").
