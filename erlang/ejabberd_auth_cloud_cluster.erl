%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud_cluster.erl
%%% Purpose : auth_cloud_cache_storage: mnesia — the password cache, the
%%%           known users and the TOTP replay guard shared by every node of
%%%           a cluster
%%%
%%% The rules (TTLs, bcrypt, which row to write, whether a token is valid,
%%% when a known user is refreshed) are the cloudauth core's, in the NIF; a
%%% NIF cannot call Mnesia, so this module only moves rows:
%%% * lend/3: before a password check, the user's cache row is read here
%%%   and handed to the NIF (cache_lend);
%%% * lend_known/3: before an isuser, the user's known-user entry (when the
%%%   backend last confirmed him) is read here and handed to the NIF
%%%   (known_lend); a "no such user" the NIF remembers stays per node;
%%% * the NIF sends every row its cache writes as {cloudauth_cache, Jid,
%%%   Row} and every known-user confirmation as {cloudauth_known, Jid,
%%%   Confirmed} to this process, which writes it in a transaction; a row or
%%%   user the core drops comes as {..., Jid, none} and is deleted;
%%% * claim/4: a one-time token new on this node comes from check_token as
%%%   a claim with the decision for each outcome; the key is inserted here
%%%   if absent, in a transaction, and the matching decision answered.
%%% The tables are disc_copies on every node that uses this storage
%%% (ejabberd_mnesia adds the local copy at start, join_cluster copies
%%% them). Keys of TOTP tokens are swept once past their Until (the core
%%% adds an hour to the token's window), and the largest Until swept is kept
%%% under the key ?SWEPT: a claim not above it may be one of the forgotten
%%% keys, so it counts as used, and a clock stepped forward and back again
%%% cannot make a used token new (token/replay.rs in the core).
%%% One process per node, under ejabberd_sup.
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_cluster).

-behaviour(gen_server).

-export([start/1, start_link/0, ensure_started/0, lend/3, lend_known/3, known_rows/1, claim/4, sweep/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
	 code_change/3]).

-include("logger.hrl").

-record(ejabberd_auth_cloud_cache,
	{jid :: binary(),
	 pwhash :: binary(),
	 firstauth :: non_neg_integer(),
	 remoteauth :: non_neg_integer(),
	 anyauth :: non_neg_integer()}).

%% A user the backend confirmed, and when (Unix seconds).
-record(ejabberd_auth_cloud_known,
	{jid :: binary(),
	 confirmed :: non_neg_integer()}).

-record(ejabberd_auth_cloud_replay,
	{key :: binary(),
	 until :: non_neg_integer()}).

-define(SWEEP_EVERY, 60000).
%% The key of the low-water mark row (keys of tokens are 64 hex digits).
-define(SWEPT, <<"swept">>).

-type row() :: {binary(), non_neg_integer(), non_neg_integer(), non_neg_integer()}.

%%%----------------------------------------------------------------------
%%% gen_server callbacks
%%%----------------------------------------------------------------------
-spec init([]) -> {ok, undefined}.
init([]) ->
    try ejabberd_auth_cloud_nif:set_cache_writer(self()) of
	ok -> ok;
	Other -> ?ERROR_MSG("The password cache cannot write to Mnesia: ~p", [Other])
    catch Class:Why ->
	    ?ERROR_MSG("The password cache cannot write to Mnesia: ~p", [{Class, Why}])
    end,
    erlang:send_after(?SWEEP_EVERY, self(), sweep),
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), undefined) -> {reply, ok, undefined}.
handle_call(_Request, _From, State) ->
    {reply, ok, State}.

-spec handle_cast(term(), undefined) -> {noreply, undefined}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), undefined) -> {noreply, undefined}.
handle_info({cloudauth_cache, Jid, none}, State) ->
    store(fun() -> mnesia:delete({ejabberd_auth_cloud_cache, Jid}) end,
	  "Password cache row of ~ts not deleted: ~p", Jid),
    {noreply, State};
handle_info({cloudauth_cache, Jid, {PwHash, First, Remote, Any}}, State) ->
    Row = #ejabberd_auth_cloud_cache{jid = Jid, pwhash = PwHash, firstauth = First,
				     remoteauth = Remote, anyauth = Any},
    store(fun() -> mnesia:write(Row) end, "Password cache row of ~ts not stored: ~p", Jid),
    {noreply, State};
handle_info({cloudauth_known, Jid, none}, State) ->
    store(fun() -> mnesia:delete({ejabberd_auth_cloud_known, Jid}) end,
	  "Known user ~ts not deleted: ~p", Jid),
    {noreply, State};
handle_info({cloudauth_known, Jid, Confirmed}, State) when is_integer(Confirmed) ->
    Row = #ejabberd_auth_cloud_known{jid = Jid, confirmed = Confirmed},
    store(fun() -> mnesia:write(Row) end, "Known user ~ts not stored: ~p", Jid),
    {noreply, State};
handle_info(sweep, State) ->
    sweep(erlang:system_time(second)),
    erlang:send_after(?SWEEP_EVERY, self(), sweep),
    {noreply, State};
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

%% Host's known users as {Jid, Confirmed}, for the account sweep.
-spec known_rows(binary()) -> [{binary(), non_neg_integer()}].
known_rows(Host) ->
    Suffix = <<"@", Host/binary>>,
    N = byte_size(Suffix),
    try mnesia:dirty_select(ejabberd_auth_cloud_known,
			    [{#ejabberd_auth_cloud_known{jid = '$1', confirmed = '$2'}, [],
			      [{{'$1', '$2'}}]}]) of
	Rows -> [R || {J, _} = R <- Rows, byte_size(J) > N,
		      binary:part(J, byte_size(J) - N, N) == Suffix]
    catch _:Why ->
	    ?WARNING_MSG("Account sweep: the known users of ~ts cannot be read: ~p", [Host, Why]),
	    []
    end.

%% Creates the tables (with a copy on this node) and starts the writer.
-spec start(binary()) -> ok.
start(_Host) ->
    ejabberd_auth_cloud:create_table(?MODULE, ejabberd_auth_cloud_cache,
				     record_info(fields, ejabberd_auth_cloud_cache)),
    ejabberd_auth_cloud:create_table(?MODULE, ejabberd_auth_cloud_known,
				     record_info(fields, ejabberd_auth_cloud_known)),
    ejabberd_auth_cloud:create_table(?MODULE, ejabberd_auth_cloud_replay,
				     record_info(fields, ejabberd_auth_cloud_replay)),
    ejabberd_auth_cloud:ensure_started_later(?MODULE).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Starts the writer under ejabberd_sup unless it runs already.
-spec ensure_started() -> ok.
ensure_started() ->
    ejabberd_auth_cloud:ensure_child(?MODULE, worker, error, "The password cache's Mnesia writer").

%% Hands the user's cache row to the NIF, before a password check.
-spec lend(reference(), binary(), binary()) -> ok.
lend(Handle, User, Server) ->
    Row = lookup(<<User/binary, "@", Server/binary>>),
    ejabberd_auth_cloud_nif:cache_lend(Handle, User, Server, Row).

%% Hands the user's known-user entry to the NIF, before an isuser.
-spec lend_known(reference(), binary(), binary()) -> ok.
lend_known(Handle, User, Server) ->
    Jid = <<User/binary, "@", Server/binary>>,
    Confirmed = try mnesia:dirty_read(ejabberd_auth_cloud_known, Jid) of
		    [#ejabberd_auth_cloud_known{confirmed = At}] -> At;
		    [] -> none
		catch _:Why ->
			?WARNING_MSG("Known user ~ts not read: ~p", [Jid, Why]),
			none
		end,
    ejabberd_auth_cloud_nif:known_lend(Handle, User, Server, Confirmed).

-spec lookup(binary()) -> row() | none.
lookup(Jid) ->
    try mnesia:dirty_read(ejabberd_auth_cloud_cache, Jid) of
	[#ejabberd_auth_cloud_cache{pwhash = H, firstauth = F, remoteauth = R, anyauth = A}] ->
	    {H, F, R, A};
	[] ->
	    none
    catch _:Why ->
	    ?WARNING_MSG("Password cache row of ~ts not read: ~p", [Jid, Why]),
	    none
    end.

%% Records a one-time token's use cluster-wide; the core's decision for
%% the outcome, or trouble when the transaction failed.
-spec claim({binary(), non_neg_integer()}, Decision, Decision, binary()) -> Decision
	when Decision :: ejabberd_auth_cloud_nif:decision().
claim({Key, Until}, IfNew, IfUsed, Jid) ->
    Insert = fun() ->
		     case mnesia:read(ejabberd_auth_cloud_replay, Key, write) of
			 [] ->
			     case mnesia:read(ejabberd_auth_cloud_replay, ?SWEPT, read) of
				 [#ejabberd_auth_cloud_replay{until = Swept}] when Until =< Swept ->
				     used;
				 _ ->
				     mnesia:write(#ejabberd_auth_cloud_replay{key = Key, until = Until}),
				     new
			     end;
			 [_] -> used
		     end
	     end,
    case mnesia:transaction(Insert) of
	{atomic, new} -> IfNew;
	{atomic, used} -> IfUsed;
	{aborted, Why} ->
	    ?WARNING_MSG("One-time token of ~ts not recorded: ~p", [Jid, Why]),
	    {own_trouble, token, <<"one-time token: its use could not be recorded in Mnesia">>, 0}
    end.

%%%----------------------------------------------------------------------
%%% Internal functions
%%%----------------------------------------------------------------------
%% Runs one write or delete in a transaction; a failure is logged (the
%% cluster then does not learn it; the core goes on).
-spec store(fun(() -> ok), string(), binary()) -> ok.
store(Change, Failed, Jid) ->
    case mnesia:transaction(Change) of
	{atomic, ok} -> ok;
	{aborted, Why} -> ?WARNING_MSG(Failed, [Jid, Why])
    end.
%% Forgets the used tokens whose Until is before Now (exported for the
%% tests, which step the clock by passing another Now).
-spec sweep(non_neg_integer()) -> ok.
sweep(Now) ->
    Match = [{#ejabberd_auth_cloud_replay{key = '$1', until = '$2'},
	      [{'<', '$2', Now}, {'=/=', '$1', ?SWEPT}], [{{'$1', '$2'}}]}],
    Sweep = fun() ->
		    case mnesia:select(ejabberd_auth_cloud_replay, Match, write) of
			[] -> ok;
			Expired ->
			    Mark = lists:max([U || {_, U} <- Expired]),
			    case mnesia:read(ejabberd_auth_cloud_replay, ?SWEPT, write) of
				[#ejabberd_auth_cloud_replay{until = Old}] when Old >= Mark -> ok;
				_ -> mnesia:write(#ejabberd_auth_cloud_replay{key = ?SWEPT, until = Mark})
			    end,
			    lists:foreach(fun({K, _}) -> mnesia:delete({ejabberd_auth_cloud_replay, K}) end,
					  Expired)
		    end
	    end,
    case mnesia:transaction(Sweep) of
	{atomic, ok} -> ok;
	{aborted, Why} -> ?WARNING_MSG("Used one-time tokens not swept: ~p", [Why])
    end.
