%%%----------------------------------------------------------------------
%%% File    : ejabberd_auth_cloud_nif.erl
%%% Purpose : Loads the cloudauth NIF (Rust) for ejabberd_auth_cloud
%%%
%%% Kept apart from ejabberd_auth_cloud on purpose: a failing -on_load in
%%% the auth module itself makes ejabberd reject the configuration with the
%%% misleading "unsupported database: cloud". Here a missing library only
%%% makes the calls below raise nif_not_loaded, which the auth module logs.
%%%
%%% Calls that may wait on the network return ok at once; the result
%%% arrives later as a message {Ref, Result} (see ejabberd_auth_cloud).
%%%----------------------------------------------------------------------
-module(ejabberd_auth_cloud_nif).

-export([new_host/1, schema/0, set_log_sink/1, stats/1, forget/3, check_token/4, auth/5, is_user/4,
	 cache_lend/4, known_lend/4, set_cache_writer/1,
	 roster_fetch/4, roster_plan/6, doctor/3, sweep_every/1, sweep/3,
	 noop/0, noop_async/1, selftest_panic/0, selftest_panic_async/1]).
-export([library_path/0]).

-on_load(init/0).

%% trouble: the backend's (or its answer's deadline); own_trouble: this
%% server's own (its queue to the backend, local state, the NIF itself).
%% Both answer "cannot tell".
-type decision() :: {yes | no | trouble | own_trouble,
		     token | backend | cache | fallback | precheck | recent | throttled | withheld,
		     binary(), non_neg_integer()}.
-export_type([decision/0]).

-spec init() -> ok | {error, {atom(), string()}}.
init() ->
    erlang:load_nif(library_path(), 0).

%% The library's path without ".so": the priv dir of the installed module
%% (ext_mod layout), else priv next to the ebin this module came from.
-spec library_path() -> string().
library_path() ->
    Priv = case code:priv_dir(ejabberd_auth_cloud) of
	       {error, bad_name} ->
		   filename:join(filename:dirname(filename:dirname(code:which(?MODULE))),
				 "priv");
	       Dir ->
		   Dir
	   end,
    filename:join(Priv, "ejabberd_auth_cloud_nif").

%% The vhost's auth_cloud_* options that are set, as ejabberd parsed them.
-spec new_host([{atom(), term()}]) -> {ok, {reference(), non_neg_integer(), [binary()]}} |
				       {error, binary()}.
new_host(_Options) -> erlang:nif_error(nif_not_loaded).

%% The core's log events go to Pid as {cloudauth_log, Level, Text}.
-spec set_log_sink(pid()) -> {ok, ok} | {error, binary()}.
set_log_sink(_Pid) -> erlang:nif_error(nif_not_loaded).

%% The host's counters as OpenMetrics text.
-spec stats(reference()) -> binary().
stats(_Host) -> erlang:nif_error(nif_not_loaded).

%% Drops the user's cache row and known-user entry; {ok, <<"user@host">>}.
-spec forget(reference(), binary(), binary()) -> {ok, binary()} | {error, binary()}.
forget(_Host, _User, _Server) -> erlang:nif_error(nif_not_loaded).

%% The account sweep's interval in milliseconds (0: off).
-spec sweep_every(reference()) -> non_neg_integer().
sweep_every(_Host) -> erlang:nif_error(nif_not_loaded).

%% One account sweep over the known users, Rows ({Jid, Confirmed}) lent
%% first (cache storage mnesia; [] otherwise); the result arrives as
%% {Ref, {Departed, Present}} (lists of <<"user@host">>) or {Ref, {error, Why}}.
-spec sweep(reference(), reference(), [{binary(), non_neg_integer()}]) -> ok | {error, binary()}.
sweep(_Host, _Ref, _Rows) -> erlang:nif_error(nif_not_loaded).

%% Every option of the core's settings schema with its default (text) or nil.
-spec schema() -> [{binary(), binary() | nil}].
schema() -> erlang:nif_error(nif_not_loaded).

%% With auth_cloud_cache_storage: mnesia, a one-time token new on this
%% node is a claim: insert Key in the cluster's table unless it is there
%% (ejabberd_auth_cloud_cluster:claim/4), then IfNew or IfUsed is the answer.
-spec check_token(reference(), binary(), binary(), binary()) ->
			 {ok, decision()} | {error, not_token} |
			 {claim, {binary(), non_neg_integer()}, decision(), decision()}.
check_token(_Host, _User, _Server, _Password) -> erlang:nif_error(nif_not_loaded).

%% The user's password cache row from Mnesia ({PwHash, FirstAuth,
%% RemoteAuth, AnyAuth} or none), right before auth/5 (storage mnesia).
-spec cache_lend(reference(), binary(), binary(),
		 {binary(), non_neg_integer(), non_neg_integer(), non_neg_integer()} | none) -> ok.
cache_lend(_Host, _User, _Server, _Row) -> erlang:nif_error(nif_not_loaded).

%% When the cluster last confirmed the user (Unix seconds, from Mnesia's
%% known-user table, or none), right before is_user/4 (storage mnesia).
-spec known_lend(reference(), binary(), binary(), non_neg_integer() | none) -> ok.
known_lend(_Host, _User, _Server, _Confirmed) -> erlang:nif_error(nif_not_loaded).

%% Rows the password cache writes go to Pid as {cloudauth_cache, Jid, Row}
%% ({cloudauth_cache, Jid, none}: delete it), known users as
%% {cloudauth_known, Jid, Confirmed} ({cloudauth_known, Jid, none}: delete it).
-spec set_cache_writer(pid()) -> ok.
set_cache_writer(_Pid) -> erlang:nif_error(nif_not_loaded).

%% For a password check_token/4 called not_token: the cache, then the cloud.
%% Later {Ref, Decision}.
-spec auth(reference(), reference(), binary(), binary(), binary()) ->
		  ok | {error, binary()}.
auth(_Host, _Ref, _User, _Server, _Password) -> erlang:nif_error(nif_not_loaded).

-spec is_user(reference(), reference(), binary(), binary()) -> ok | {error, binary()}.
is_user(_Host, _Ref, _User, _Server) -> erlang:nif_error(nif_not_loaded).

%% Later {Ref, {ok, Hash, Groups, Names, Skipped}} or {Ref, {trouble, Why}}.
-spec roster_fetch(reference(), reference(), binary(), binary()) -> ok | {error, binary()}.
roster_fetch(_Host, _Ref, _User, _Server) -> erlang:nif_error(nif_not_loaded).

-spec roster_plan({binary(), binary()}, list(), list(), list(), [binary()], list()) -> list().
roster_plan(_Login, _Groups, _Names, _Members, _LoginGroups, _KnownNames) ->
    erlang:nif_error(nif_not_loaded).

%% The host's set-up checked (ejabberdctl cloud_auth_doctor). Later
%% {Ref, [{pass | warn | fail, Line}]}, within BudgetMs.
-spec doctor(reference(), reference(), binary()) -> {ok, non_neg_integer()} | {error, binary()}.
doctor(_Host, _Ref, _Server) -> erlang:nif_error(nif_not_loaded).

-spec noop() -> ok.
noop() -> erlang:nif_error(nif_not_loaded).

-spec noop_async(reference()) -> ok | {error, binary()}.
noop_async(_Ref) -> erlang:nif_error(nif_not_loaded).

-spec selftest_panic() -> no_return().
selftest_panic() -> erlang:nif_error(nif_not_loaded).

-spec selftest_panic_async(reference()) -> ok | {error, binary()}.
selftest_panic_async(_Ref) -> erlang:nif_error(nif_not_loaded).
