%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud_roster.erl
%%% Purpose : Shared roster groups from Nextcloud groups, inside the VM
%%%
%%% After a login (auth_cloud_roster_sync: true), in a process of its own:
%%% fetch the user's shared roster from the cloud (NIF, asynchronous), skip
%%% everything if its digest is the one of the last sync, else read the
%%% current state from the shared roster itself, let the core plan the
%%% changes and apply them through ejabberd's command API (what
%%% ejabberdctl srg_create/srg_user_add/srg_user_del/set_vcard do).
%%% Groups provisioned here carry a marker in their description; only those
%%% are ever changed. The digests and the names set are kept in Mnesia, so
%%% every node of a cluster sees the same.
%%%
%%% Needs mod_shared_roster, mod_vcard and mod_admin_extra (the commands).
%%%
%%% Each sync after a login is a temporary child of this module's
%%% supervisor (one per node, under ejabberd_sup): it is stopped when
%%% ejabberd stops, and a crash is reported by OTP, never lost.
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_roster).

-behaviour(supervisor).

-export([start/1, start_link/0, ensure_started/0, start_sync/3,
	 sync_async/3, sync/3, depart/2]).
-export([init/1]).

-include("logger.hrl").

-record(ejabberd_auth_cloud_roster,
	{key :: {hash | name, {binary(), binary()}},
	 value :: binary()}).

-define(MARKER, <<"Nextcloud group (provisioned by cloudauth)">>).
-define(CALLER, #{caller_module => ejabberd_ctl}).

-type jid() :: {binary(), binary()}.
-type stats() :: #{unchanged := boolean(), actions := non_neg_integer(),
		   failed := non_neg_integer(), calls := non_neg_integer(),
		   micros := non_neg_integer()}.

%%%----------------------------------------------------------------------
%%% supervisor callbacks
%%%----------------------------------------------------------------------
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 1},
	  [#{id => sync, start => {?MODULE, start_sync, []},
	     restart => temporary, shutdown => 5000, type => worker,
	     modules => [?MODULE]}]}}.

%%%----------------------------------------------------------------------
%%% API
%%%----------------------------------------------------------------------

%% Creates the table of digests and names (idempotent, per node) and starts
%% the supervisor of the syncs.
-spec start(binary()) -> ok.
start(_Host) ->
    ejabberd_auth_cloud:create_table(?MODULE, ejabberd_auth_cloud_roster,
				     record_info(fields, ejabberd_auth_cloud_roster)),
    ejabberd_auth_cloud:ensure_started_later(?MODULE).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% Starts the supervisor of the syncs under ejabberd_sup unless it runs.
-spec ensure_started() -> ok.
ensure_started() ->
    ejabberd_auth_cloud:ensure_child(?MODULE, supervisor, error,
				     "The shared roster's sync supervisor").

%% One sync (or, for a list of users, one after another: the account
%% sweep's re-read), as a child of the supervisor (linked to it).
-spec start_sync({reference(), timeout()}, binary() | [binary()], binary()) -> {ok, pid()}.
start_sync(Handle, Users, Server) when is_list(Users) ->
    {ok, proc_lib:spawn_link(fun() -> [sync(Handle, U, Server) || U <- Users] end)};
start_sync(Handle, User, Server) ->
    {ok, proc_lib:spawn_link(fun() -> sync(Handle, User, Server) end)}.

%% Takes a departed user (the account sweep found him gone) out of every
%% provisioned group he is in: the core's plan towards no groups at all,
%% without asking the cloud, which no longer knows him.
-spec depart(binary(), binary()) -> ok.
depart(User, Server) ->
    US = {User, Server},
    {LoginGroups, _} = login_groups(US, Server),
    Actions = ejabberd_auth_cloud_nif:roster_plan(US, [], [], [], LoginGroups, []),
    Failed = length([A || A <- Actions, apply_action(Server, A) /= ok]),
    _ = forget_stale(US, Server, [], Actions),
    mnesia:dirty_delete(ejabberd_auth_cloud_roster, {hash, US}),
    ?INFO_MSG("Shared roster: ~ts@~ts taken out of ~B groups, ~B failed",
	      [User, Server, length(Actions), Failed]).

%% Syncs in a process of its own: the login never waits for it.
-spec sync_async({reference(), timeout()}, binary() | [binary()], binary()) -> ok.
sync_async(Handle, User, Server) ->
    Args = [Handle, User, Server],
    Result = case start_child(Args) of
		 {exit, {noproc, _}} ->
		     %% A login right at start, before ensure_started ran.
		     ensure_started(),
		     start_child(Args);
		 First -> First
	     end,
    case Result of
	{ok, _} -> ok;
	Why -> ?ERROR_MSG("Shared roster of ~ts@~ts not synced: ~p", [User, Server, Why])
    end.

start_child(Args) ->
    try supervisor:start_child(?MODULE, Args)
    catch exit:Why -> {exit, Why}
    end.

%% Syncs now; every failure is logged with its reason.
-spec sync({reference(), timeout()}, binary(), binary()) -> {ok, stats()} | {error, term()}.
sync({Handle, Wait}, User, Server) ->
    Started = erlang:monotonic_time(microsecond),
    Ref = make_ref(),
    try ejabberd_auth_cloud_nif:roster_fetch(Handle, Ref, User, Server) of
	ok ->
	    receive
		{Ref, {ok, Hash, Groups, Names, Skipped}} ->
		    log_skipped(User, Server, Skipped),
		    reconcile(User, Server, Hash, Groups, Names, Started);
		{Ref, {trouble, Why}} ->
		    ?WARNING_MSG("Shared roster of ~ts@~ts not synced: ~ts", [User, Server, Why]),
		    {error, Why};
		{Ref, {error, Why}} ->
		    ?ERROR_MSG("Shared roster of ~ts@~ts not synced: ~ts", [User, Server, Why]),
		    {error, Why}
	    after Wait ->
		    ?ERROR_MSG("Shared roster of ~ts@~ts not synced: no answer in time", [User, Server]),
		    {error, timeout}
	    end;
	{error, Why} ->
	    ?ERROR_MSG("Shared roster of ~ts@~ts not synced: ~ts", [User, Server, Why]),
	    {error, Why}
    catch Class:Reason ->
	    ?ERROR_MSG("Shared roster of ~ts@~ts not synced: ~p:~p", [User, Server, Class, Reason]),
	    {error, Reason}
    end.

%%%----------------------------------------------------------------------
%%% Internal functions
%%%----------------------------------------------------------------------
reconcile(User, Server, Hash, Groups, Names, Started) ->
    US = {User, Server},
    case read({hash, US}) of
	{ok, Hash} ->
	    %% Info, not debug: in a cluster this line shows that a sync
	    %% another node made is known here (the digests are in Mnesia).
	    ?INFO_MSG("Shared roster of ~ts@~ts unchanged since its last sync "
		      "(on any node): no command sent", [User, Server]),
	    {ok, #{unchanged => true, actions => 0, failed => 0, calls => 0,
		   micros => erlang:monotonic_time(microsecond) - Started}};
	_ ->
	    {Members, Reads1} = members(Server, Groups),
	    {LoginGroups, Reads2} = login_groups(US, Server),
	    Known = [{J, N} || {J, _} <- Names, {ok, N} <- [read({name, J})]],
	    Actions = ejabberd_auth_cloud_nif:roster_plan(US, Groups, Names, Members,
							   LoginGroups, Known),
	    Failed = length([A || A <- Actions, apply_action(Server, A) /= ok]),
	    Reads3 = forget_stale(US, Server, Members, Actions),
	    case Failed of
		0 -> write({hash, US}, Hash);
		_ -> ok   % retried at the next login
	    end,
	    Micros = erlang:monotonic_time(microsecond) - Started,
	    ?INFO_MSG("Shared roster of ~ts@~ts synced: ~B changes, ~B failed, in ~B us",
		      [User, Server, length(Actions), Failed, Micros]),
	    {ok, #{unchanged => false, actions => length(Actions), failed => Failed,
		   calls => Reads1 + Reads2 + Reads3 + length(Actions), micros => Micros}}
    end.

%% Members of the desired groups that exist; and how many calls it took.
-spec members(binary(), list()) -> {[{binary(), [jid()]}], non_neg_integer()}.
members(Host, Groups) ->
    Existing = [Id || {Id, _, _} <- Groups,
		      mod_shared_roster:get_group_opts(Host, Id) /= error],
    {[{Id, mod_shared_roster:get_group_explicit_users(Host, Id)} || Id <- Existing],
     length(Groups) + length(Existing)}.

%% Clears the digests this sync made stale (the core's stale_digests rule):
%% those of the members, before and after, of every group whose membership
%% it changed, but the login user's. A digest says "the shared roster
%% matches this user's answer", and another user's sync may have undone
%% that (bob put into a group by alice's sync and leaving it before his next
%% login; alice's answer listing bob again after bob's own sync took him
%% out). Attempted actions count too: a failed command may have done its
%% part. Returns the number of group reads it took.
-spec forget_stale(jid(), binary(), [{binary(), [jid()]}], list()) -> non_neg_integer().
forget_stale(US, Host, Members, Actions) ->
    Changes = [{Id, J} || {Op, Id, J} <- Actions, Op == add_member orelse Op == remove_member],
    Changed = lists:usort([Id || {Id, _} <- Changes]),
    %% Groups not read before the sync (those the login user left) are read now.
    Unread = [Id || Id <- Changed, not lists:keymember(Id, 1, Members)],
    Others = lists:append([M || {Id, M} <- Members, lists:member(Id, Changed)])
	++ lists:append([mod_shared_roster:get_group_explicit_users(Host, Id) || Id <- Unread]),
    Stale = lists:usort([J || {_, J} <- Changes] ++ Others) -- [US],
    lists:foreach(fun(J) -> mnesia:dirty_delete(ejabberd_auth_cloud_roster, {hash, J}) end, Stale),
    length(Unread).

%% The provisioned groups the user is in now, read from the shared roster.
-spec login_groups(jid(), binary()) -> {[binary()], non_neg_integer()}.
login_groups(US, Host) ->
    All = mod_shared_roster:list_groups(Host),
    Ours = [G || G <- All, provisioned(Host, G)],
    {[G || G <- Ours, mod_shared_roster:is_user_in_group(US, G, Host)],
     1 + length(All) + length(Ours)}.

provisioned(Host, Group) ->
    case mod_shared_roster:get_group_opts(Host, Group) of
	Opts when is_list(Opts) -> proplists:get_value(description, Opts) == ?MARKER;
	_ -> false
    end.

apply_action(Host, {create_group, Id, Label}) ->
    command(srg_create, [Id, Host, Label, ?MARKER, Id]);
apply_action(Host, {add_member, Id, {U, S}}) ->
    command(srg_user_add, [U, S, Id, Host]);
apply_action(Host, {remove_member, Id, {U, S}}) ->
    command(srg_user_del, [U, S, Id, Host]);
apply_action(_Host, {set_name, {U, S} = US, Name}) ->
    case command(set_vcard, [U, S, <<"FN">>, Name]) of
	ok -> write({name, US}, Name);
	Err -> Err
    end.

%% One command, as ejabberdctl would run it; failures logged with the reason.
command(Name, Args) ->
    try ejabberd_commands:execute_command2(Name, Args, ?CALLER) of
	ok -> ok;
	{error, _} = Err -> logged(Name, Args, Err);
	_ -> ok
    catch Class:Reason -> logged(Name, Args, {Class, Reason})
    end.

logged(Name, Args, Why) ->
    ?WARNING_MSG("Shared roster: ~ts ~p failed: ~p", [Name, Args, Why]),
    {error, Why}.

log_skipped(_User, _Server, []) -> ok;
log_skipped(User, Server, Skipped) ->
    ?DEBUG("Shared roster of ~ts@~ts: groups left out: ~p", [User, Server, Skipped]).

read(Key) ->
    case mnesia:dirty_read(ejabberd_auth_cloud_roster, Key) of
	[#ejabberd_auth_cloud_roster{value = V}] -> {ok, V};
	[] -> error
    end.

write(Key, Value) ->
    mnesia:dirty_write(#ejabberd_auth_cloud_roster{key = Key, value = Value}).
