%%%----------------------------------------------------------------------
%%% A login storm inside a running ejabberd (loaded into the sandbox and
%%% called from a hidden node by bench/storm/run.sh, through the storm
%%% driver's `storm vm`): N users, each an Erlang process that calls
%%% ejabberd_auth:check_password(User, <<"">>, Host, Password) with its own
%%% right password at its moment, the starts spread evenly over the spread.
%%% Real XMPP clients for thousands of users do not fit a 2-core machine
%%% next to the server; these processes stand in for their c2s processes.
%%%
%%% check_password/4 answers true or false; "could not find out" is told
%%% from "no" by the warning ejabberd_auth_cloud logs for backend trouble,
%%% which a logger handler of this module notes per user while the storm
%%% runs (handlers run in the logging process: the login's own).
%%%
%%% Writes JSON to Out: "answers" [[StartUs, Code, AnsweredUs]] per user
%%% (from the storm's start; Code 1 yes, 0 no, 2 could not find out,
%%% 3 unanswered, 4 crashed) and "memory" (KiB: the beam's RSS, its VmHWM,
%%% Erlang process memory, and RSS outside process memory, before the storm
%%% and at their peaks, sampled every 50 ms).
%%%----------------------------------------------------------------------
-module(cloudauth_storm).

-export([run/1, log/2]).

-define(TAB, cloudauth_storm_trouble).

-spec run(#{host := binary(), users := pos_integer(), spread_ms := non_neg_integer(),
	    deadline_ms := pos_integer(), out := file:filename()}) -> ok.
run(#{host := Host, users := N, spread_ms := Spread, deadline_ms := Deadline, out := Out}) ->
    ?TAB = ets:new(?TAB, [named_table, public, set, {write_concurrency, true}]),
    ok = logger:add_handler(?MODULE, ?MODULE, #{level => warning}),
    try
	{Answers, Memory} = storm(Host, N, Spread, Deadline),
	ok = file:write_file(Out, json(Answers, Memory))
    after
	_ = logger:remove_handler(?MODULE),
	ets:delete(?TAB)
    end.

%% logger handler: the auth module's backend-trouble warning, per user.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{msg := {Format, [_Op, User | _]}, meta := #{mfa := {ejabberd_auth_cloud, _, _}}}, _)
  when is_binary(User) ->
    try string:find(Format, "backend trouble") of
	nomatch -> ok;
	_ -> ets:insert(?TAB, {User, true}), ok
    catch _:_ -> ok
    end;
log(_, _) ->
    ok.

storm(Host, N, Spread, Deadline) ->
    Self = self(),
    Before = sample(),
    Sampler = spawn_link(fun() -> sampler(Before) end),
    T0 = erlang:monotonic_time(millisecond) + 200,
    Starts = [{I, (I * Spread) div N} || I <- lists:seq(0, N - 1)],
    Pids = [spawn(fun() -> login(Self, Host, I, T0 + Off) end) || {I, Off} <- Starts],
    Got = collect(N, T0 + Deadline, #{}),
    [exit(P, kill) || P <- Pids],
    Sampler ! {stop, Self},
    Memory = receive {memory, M} -> M after 5000 -> #{} end,
    T0us = T0 * 1000,
    Answers = [case maps:find(I, Got) of
		   {ok, {Code, At}} -> [Off * 1000, Code, At - T0us];
		   error -> [Off * 1000, 3, 0]
	       end || {I, Off} <- Starts],
    {Answers, Memory}.

login(Parent, Host, I, StartMs) ->
    erlang:send_after(StartMs, self(), go, [{abs, true}]),
    receive go -> ok end,
    IB = integer_to_binary(I),
    User = <<"u", IB/binary>>,
    Code = try ejabberd_auth:check_password(User, <<"">>, Host, <<"pw-", IB/binary, "-storm">>) of
	       true -> 1;
	       false ->
		   case ets:member(?TAB, User) of
		       true -> 2;
		       false -> 0
		   end;
	       _ -> 4
	   catch _:_ -> 4
	   end,
    Parent ! {storm, I, Code, erlang:monotonic_time(microsecond)}.

collect(0, _, Acc) ->
    Acc;
collect(Left, Until, Acc) ->
    Wait = max(0, Until - erlang:monotonic_time(millisecond)),
    receive
	{storm, I, Code, At} -> collect(Left - 1, Until, Acc#{I => {Code, At}})
    after Wait ->
	    Acc
    end.

%% {RSS, Erlang process memory} in KiB.
sample() ->
    {status_kib("VmRSS:"), erlang:memory(processes) div 1024}.

%% Peaks of RSS, process memory and RSS outside process memory (the NIF's
%% requests and runtime live there), until told to stop.
sampler({Rss0, Procs0}) ->
    sampler(#{rss_before_kib => Rss0, procs_before_kib => Procs0,
	      outside_before_kib => Rss0 - Procs0, rss_peak_kib => Rss0,
	      procs_peak_kib => Procs0, outside_peak_kib => Rss0 - Procs0}, tick).

sampler(M, tick) ->
    receive
	{stop, To} ->
	    To ! {memory, M#{hwm_kib => status_kib("VmHWM:")}}
    after 50 ->
	    {R, P} = sample(),
	    sampler(M#{rss_peak_kib := max(R, maps:get(rss_peak_kib, M)),
		       procs_peak_kib := max(P, maps:get(procs_peak_kib, M)),
		       outside_peak_kib := max(R - P, maps:get(outside_peak_kib, M))}, tick)
    end.

status_kib(Field) ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]),
		   binary:longest_common_prefix([L, list_to_binary(Field)]) == length(Field)],
    [_, Kib | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kib).

json(Answers, Memory) ->
    Rows = lists:join(",", [io_lib:format("[~B,~B,~B]", [S, C, max(0, A)]) || [S, C, A] <- Answers]),
    Mem = lists:join(",", [io_lib:format("\"~s\":~B", [K, V]) || {K, V} <- lists:sort(maps:to_list(Memory))]),
    iolist_to_binary(["{\"answers\":[", Rows, "],\"memory\":{", Mem, "}}\n"]).
