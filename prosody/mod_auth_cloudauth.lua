-- mod_auth_cloudauth: Prosody 0.12 and 13 authentication against Nextcloud/JSXC
-- through a long-running cloudauth (`cloudauth --listen generic=ADDR`).
--
-- The "generic" protocol is one line per request, `auth:USER:DOMAIN:PASSWORD`
-- or `isuser:USER:DOMAIN`, answered by `1` or `0` in request order. Each new
-- connection first sends `hello:tristate,client-address,departed`; the answer names
-- the features granted. With `tristate` cloudauth answers `?` for "cannot
-- tell" (Nextcloud down), so that a login fails as a temporary failure and
-- a user is not taken for unknown; with `client-address` a login whose
-- session has an IP address is sent as `authfrom:ADDR:USER:DOMAIN:PASSWORD`
-- (IPv6 in brackets), so that cloudauth can pass the client's address on to
-- Nextcloud (its forward-client-address setting). An older cloudauth
-- answers `0` (or fewer features) and the connection keeps `auth:` and `1`/`0`.
-- Requests on a new connection wait for that answer.
-- With `departed` (cloudauth's account sweep is on) the module polls for
-- accounts gone from Nextcloud and closes their sessions (below).
-- Because
-- answers come in order, a token login pipelined behind password logins
-- would wait for the cloud too. So a host keeps a small pool of connections:
-- a request takes an idle connection, opens another one while fewer than
-- `cloudauth_connections` are open, and only then is pipelined on the least
-- busy one (a FIFO per connection takes the answers in turn). Waiting uses
-- util.async, so the session asking is suspended while Prosody keeps serving
-- everybody else.
--
--   authentication = "cloudauth"
--   cloudauth_socket = "/run/cloudauth/prosody.sock" -- unix socket (default)
--   -- or: cloudauth_host = "127.0.0.1"; cloudauth_port = 23664 -- TCP (IP address)
--   cloudauth_timeout = 12 -- seconds to wait for an answer
--   cloudauth_connections = 4 -- connections to cloudauth at most
--   cloudauth_roster = true -- shared roster from Nextcloud groups (prosody/README.md)
--   cloudauth_roster_refresh = 600 -- seconds between re-reads of provisioned rosters (0: off)
--   cloudauth_departed_poll = 5 -- seconds between asks for accounts gone from Nextcloud (0: off)

local async = require "util.async";
local server = require "net.server";
local new_sasl = require "util.sasl".new;

local host = module.host;
local port = module:get_option_number("cloudauth_port");
local ip = module:get_option_string("cloudauth_host", "127.0.0.1");
local path = module:get_option_string("cloudauth_socket", not port and "/run/cloudauth/prosody.sock" or nil);
-- Above cloudauth's own deadline for a decision (its --timeout total, 10 s
-- by default, and 1 s): on backend trouble cloudauth answers "cannot tell"
-- itself, and this timeout only catches a hung cloudauth.
local timeout = module:get_option_number("cloudauth_timeout", 12);
local max_connections = math.max(1, math.floor(module:get_option_number("cloudauth_connections", 4)));
local target = path and ("unix:" .. path) or (ip .. ":" .. port);

-- The open connections, keyed by their net.server connection. Each holds
-- `buffer` (received bytes not yet forming a whole line) and `pending`
-- (requests waiting for an answer on it, oldest first).
local pool = {};

-- A cloudauth said `departed` in its hello: its account sweep is on and
-- this module polls for the accounts it found gone.
local departed_spoken = false;

-- The answer "cannot tell" (`?`, or no answer at all): never a "no".
local cannot_tell = "cloudauth cannot tell";

-- Answer a request (true/false, or nil and an error) and wake its session.
local function finish(req, answer, err)
	if req.finished then return; end
	req.finished, req.answer, req.err = true, answer, err;
	req.timer:stop();
	req.wake();
end

-- Forget one connection and fail every request still waiting on it. Other
-- connections are untouched; the next request may connect afresh.
local function drop(link, reason)
	if pool[link.conn] ~= link then return; end
	pool[link.conn] = nil;
	link.conn:close();
	local reqs = link.pending;
	link.pending = {};
	for _, req in ipairs(reqs) do
		finish(req, nil, reason);
	end
end

local function drop_all(reason)
	-- Listed first: a woken session may open connections while we go.
	local links = {};
	for _, link in pairs(pool) do links[#links + 1] = link; end
	for _, link in ipairs(links) do drop(link, reason); end
end

local listeners = {};

function listeners.onincoming(c, data)
	local link = pool[c];
	if not link then return; end -- a connection we dropped
	local buffer, pos = link.buffer .. data, 1;
	-- Lines are cut by position: a roster answer may bring thousands at once.
	while pool[c] == link do -- a woken session may make requests (or drop) meanwhile
		local nl = buffer:find("\n", pos, true);
		if not nl then break; end
		local line = buffer:sub(pos, nl - 1);
		pos = nl + 1;
		local req = link.pending[1];
		local done, answer, err; -- done stays nil for a line that answers nothing
		if req and req.hello then
			-- `0`: a cloudauth from before `hello` (an unknown command).
			local features = line:match("^hello:(.*)$");
			if features or line == "0" then
				local granted = {};
				for f in (features or ""):gmatch("[^,]+") do granted[f] = true; end
				done, link.tristate, link.client_address = true, granted.tristate, granted["client-address"];
				link.greeting = nil;
				if granted.departed then departed_spoken = true; end
				module:log("debug", "cloudauth at %s answers \"cannot tell\": %s; takes client addresses: %s; departed accounts: %s",
					target, link.tristate and "yes" or "no (old cloudauth)",
					link.client_address and "yes" or "no", granted.departed and "yes" or "no");
			end
		elseif req and req.roster then
			done, answer = req.roster(line);
		elseif req and (line == "1" or line == "0") then
			done, answer = true, line == "1";
		elseif req and line == "?" and link.tristate then
			done, err = true, cannot_tell;
		end
		if done == nil or not req then
			module:log("error", "Unexpected answer from cloudauth at %s; dropping the connection", target);
			return drop(link, "protocol error");
		end
		if done then
			table.remove(link.pending, 1);
			finish(req, answer, err);
		end
	end
	link.buffer = buffer:sub(pos);
	-- Every answer line is bounded (a roster line by cloudauth's field limits).
	if pool[c] == link and #link.buffer > 16384 then
		module:log("error", "Overlong answer from cloudauth at %s; dropping the connection", target);
		drop(link, "protocol error");
	end
end

function listeners.ondisconnect(c, err)
	local link = pool[c];
	if not link then return; end -- one we dropped
	module:log(#link.pending > 0 and "warn" or "debug", "Connection to cloudauth at %s lost: %s",
		target, err or "closed");
	drop(link, err or "connection closed");
end

-- An idle connection is fine: keep it instead of letting net.server close it.
function listeners.onreadtimeout()
	return true;
end

-- Open a non-blocking connection; writes are buffered until it is up.
local function connect()
	if not path then
		return server.addclient(ip, port, listeners);
	end
	local ok_unix, unix = pcall(require, "socket.unix");
	if not ok_unix then return nil, "no unix socket support in LuaSocket"; end
	if type(unix) == "function" then unix = { stream = unix }; end -- older LuaSocket
	local sock, err = unix.stream();
	if not sock then return nil, err; end
	sock:settimeout(0);
	local ok;
	ok, err = sock:connect(path);
	if not ok and err ~= "timeout" then
		sock:close();
		return nil, err;
	end
	return server.wrapclient(sock, path, 0, listeners);
end

-- The connection for the next request: an idle one, else a new one while the
-- pool has room, else the one with the fewest requests waiting.
local function pick()
	local best, open = nil, 0;
	for _, link in pairs(pool) do
		open = open + 1;
		if not best or #link.pending < #best.pending then best = link; end
	end
	if best and #best.pending == 0 then return best; end
	if open < max_connections then
		local c, err = connect();
		if c then
			local link = { conn = c, buffer = "", pending = {} };
			pool[c] = link;
			-- Asked first, answered first; requests on this connection wait
			-- for it (finish wakes them, also when the connection drops).
			local hello = { hello = true, waiting = {}, timer = { stop = function () end } };
			function hello.wake()
				for _, wake in ipairs(hello.waiting) do wake(); end
			end
			link.greeting = hello;
			table.insert(link.pending, hello);
			c:write("hello:tristate,client-address,departed\n");
			return link;
		end
		module:log("warn", "Cannot connect to cloudauth at %s: %s", target, err);
	end
	if best then return best; end
	return nil, "cloudauth unreachable";
end

-- Send one request line and wait (without blocking Prosody) for its answer.
-- Returns true/false, or nil and an error when there is no answer. With
-- `reader` (a function of each answer line returning done, answer; nil for
-- a protocol error), the answer may span several lines. `line` may be a
-- function of the connection (what it negotiated) giving the line.
local function request(line, reader)
	if not async.ready() then
		return nil, "cloudauth needs an async context";
	end
	local link, err = pick();
	if not link then return nil, err; end
	if link.greeting then
		local wait_hello, wake_hello = async.waiter();
		table.insert(link.greeting.waiting, wake_hello);
		local timer = module:add_timer(timeout, function ()
			if link.greeting then drop(link, "timeout"); end
		end);
		wait_hello();
		timer:stop();
		if pool[link.conn] ~= link then return nil, "connection to cloudauth lost"; end
	end
	if type(line) == "function" then line = line(link); end
	local wait, wake = async.waiter();
	local req = { wake = wake, roster = reader };
	req.timer = module:add_timer(timeout, function ()
		if req.finished then return; end
		-- Answers come in order, so everything behind this one on its
		-- connection is stuck too.
		module:log("warn", "No answer from cloudauth at %s within %g s; dropping the connection",
			target, timeout);
		drop(link, "timeout");
	end);
	table.insert(link.pending, req);
	link.conn:write(line .. "\n");
	wait();
	return req.answer, req.err;
end

-- ':' separates the fields and a newline ends the request.
local function bad_user(username)
	return type(username) ~= "string" or username == "" or username:find("[:\r\n]") ~= nil;
end

local provider = {};

-- test_password's error when it could not find out (SASL: temporary-auth-failure).
local unavailable = "Auth failed. Authentication service unavailable.";

-- Users the cloud has just listed as members in the roster sync under way
-- (see sync_roster): save_roster asks user_exists for every roster it
-- writes, and asking cloudauth again for each of thousands of contacts
-- would cost a round trip each.
local listed = {};

-- A session's address as `authfrom` spells it (IPv6 in brackets), or nil
-- for anything that is no IP address literal.
local function client_address(addr)
	if type(addr) ~= "string" then return nil; end
	if addr:match("^%d+%.%d+%.%d+%.%d+$") then return addr; end
	if addr:find(":", 1, true) and addr:match("^[%x:.]+$") then return "[" .. addr .. "]"; end
	return nil;
end

-- The password check, from the client at `from` (the session's IP address) if known.
local function check_password(username, password, from)
	if bad_user(username) or type(password) ~= "string" or password:find("[\r\n]") then
		module:log("debug", "Refusing malformed credentials without asking cloudauth");
		return nil, "Auth failed. Invalid username or password.";
	end
	local addr = client_address(from);
	local ok, err = request(function (link)
		if addr and link.client_address then
			return ("authfrom:%s:%s:%s:%s"):format(addr, username, host, password);
		end
		return ("auth:%s:%s:%s"):format(username, host, password);
	end);
	if err then
		module:log("warn", "auth %s@%s: %s, refusing as a temporary failure", username, host,
			err == cannot_tell and err or ("no answer (" .. err .. ")"));
		return nil, unavailable;
	end
	module:log("debug", "auth %s@%s: %s", username, host, ok and "yes" or "no");
	if ok then return true; end
	return nil, "Auth failed. Invalid username or password.";
end

function provider.test_password(username, password)
	return check_password(username, password, nil);
end

function provider.user_exists(username)
	if bad_user(username) then return nil, "Invalid username"; end
	if listed[username] then return true; end
	local ok, err = request(("isuser:%s:%s"):format(username, host));
	if err then
		-- Taken as existing: mod_message then stores a message for him
		-- (mod_offline) instead of bouncing it, and save_roster keeps a
		-- subscription request instead of dropping it (prosody/README.md).
		module:log("warn", "isuser %s@%s: %s; taken as existing", username, host,
			err == cannot_tell and err or ("no answer (" .. err .. ")"));
		return true;
	end
	if ok then return true; end
	return nil, "User does not exist";
end

-- Accounts live in Nextcloud.
function provider.set_password() return nil, "not supported"; end
function provider.create_user() return nil, "not supported"; end
function provider.delete_user() return nil, "not supported"; end
function provider.users() return function() return nil; end; end

-- util.sasl's PLAIN knows only not-authorized for a failed plain_test: a
-- login cloudauth could not decide becomes temporary-auth-failure here, so
-- that the client retries later instead of asking for a new password.
-- mod_saslauth replaces the handler by its clean_clone(), so that is ours too.
local sasl_profile = {
	plain_test = function (sasl, username, password)
		local ok, err = check_password(username, password, sasl.cloudauth_ip);
		sasl.cloudauth_unavailable = err == unavailable;
		return ok == true, true;
	end;
};
local function sasl_handler(ip)
	local handler = new_sasl(host, sasl_profile);
	-- The session's address, for `authfrom` (mod_saslauth keeps the session
	-- out of the SASL callbacks).
	handler.cloudauth_ip = ip;
	local process = handler.process;
	function handler:process(message)
		self.cloudauth_unavailable = nil;
		local status, condition, text = process(self, message);
		if status == "failure" and self.cloudauth_unavailable then
			return "failure", "temporary-auth-failure", "Authentication service unavailable, try again later";
		end
		return status, condition, text;
	end
	function handler:clean_clone()
		return sasl_handler(self.cloudauth_ip);
	end
	return handler;
end

function provider.get_sasl_handler(session)
	return sasl_handler(session and session.ip);
end

-- Shared roster (cloudauth_roster = true): see prosody/README.md. The
-- rules (which groups, which members, which names) are cloudauth's; this
-- only stores what it answers. Per user the store `cloudauth_roster` keeps
-- the version cloudauth gave and, for each contact cloudauth put into the
-- roster, its bucket: an answer replaces whole buckets, and only contacts
-- remembered here are ever removed.
local roster_on = module:get_option_boolean("cloudauth_roster", false);
local roster_refresh = module:get_option_number("cloudauth_roster_refresh", 0);
local rm = require "core.rostermanager";
local jid_prep = require "util.jid".prep;
local provisioned = module:open_store("cloudauth_roster");

-- A reader for a roster answer: `=`, `!`, `0` (refused), or a header and
-- LINES lines: `#<TAB>BUCKET` opens a bucket, its contacts follow.
local function roster_reader()
	local answer, left, bucket;
	return function (line)
		if not answer then
			if line == "=" then return true, { unchanged = true }; end
			if line == "!" then return true, { unknown = true }; end
			if line == "0" then return true, { refused = true }; end
			local lines, own_bucket, version, own = line:match("^%+\t(%d+)\t(%d+)\t([^\t]+)\t(.*)$");
			if not lines then return nil; end
			answer = { version = version, own_bucket = tonumber(own_bucket),
				own_name = own ~= "" and own or nil, buckets = {}, bad = 0 };
			left = tonumber(lines);
			return left == 0, answer;
		end
		left = left - 1;
		local b = line:match("^#\t(%d+)$");
		if b then
			bucket = {};
			answer.buckets[tonumber(b)] = bucket;
		else
			if not bucket then return nil; end
			local fields = {};
			for f in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = f; end
			local contact, name = jid_prep(fields[1] or ""), fields[2];
			if contact and name and not contact:find("/", 1, true) then
				local groups = {};
				for i = 3, #fields do groups[fields[i]] = true; end
				bucket[contact] = { name = name ~= "" and name or nil, groups = groups };
			else
				answer.bad = answer.bad + 1; -- counted and logged, the rest still applies
			end
		end
		return left <= 0, answer;
	end;
end

-- The local user behind a bare JID of this host, or nil.
local function local_user(jid)
	local user, domain = jid:match("^([^@/]+)@([^@/]+)$");
	return domain == host and user or nil;
end

local function same_groups(a, b)
	for g in pairs(a) do if not b[g] then return false; end end
	for g in pairs(b) do if not a[g] then return false; end end
	return true;
end

-- Whether roster item `old` already is the provisioned `item`.
local function is_item(old, item)
	return old ~= nil and old.subscription == "both" and old.name == item.name
		and same_groups(old.groups or {}, item.groups);
end

local function provisioned_item(old, item)
	return { subscription = "both", name = item.name, groups = item.groups,
		approved = old and old.approved or nil };
end

-- Whether the cloud says `username` does not exist (not: cannot tell).
local function gone(username)
	local ok, err = provider.user_exists(username);
	return not ok and err == "User does not exist";
end

-- The other side: put `me` into (item) or take him out of (nil) the
-- roster of `username`, a contact of this host. Returns false on failure;
-- a contact deleted in the cloud has no roster left to fix (save_roster
-- refuses it), which is no failure: else every later sync would start
-- from scratch again.
local function set_other_side(username, me, bucket, item)
	local roster = rm.load_roster(username, host);
	if not roster then return false; end
	local theirs = provisioned:get(username) or {};
	theirs.items = theirs.items or {};
	local old = roster[me];
	if item then
		if not is_item(old, item) then
			roster[me] = provisioned_item(old, item);
			if not rm.save_roster(username, host, roster, me) then return false; end
			rm.roster_push(username, host, me);
		end
		if theirs.items[me] ~= bucket then
			theirs.items[me] = bucket;
			provisioned:set(username, theirs);
		end
	elseif theirs.items[me] then
		if old then
			roster[me] = nil;
			if rm.save_roster(username, host, roster, me) then
				rm.roster_push(username, host, me);
			elseif not gone(username) then
				return false;
			end
		end
		theirs.items[me] = nil;
		provisioned:set(username, theirs);
	end
	return true;
end

-- Ask cloudauth what changed in username's shared roster since the version
-- he holds, and store it: the changed buckets replace his provisioned
-- contacts of those buckets. Each contact of this host whose item changed
-- gets username too (or loses him), so colleagues see each other after
-- either one's sync, and a member who left disappears from both rosters
-- without his own login.
local function sync_roster(username)
	local state = provisioned:get(username) or {};
	local items = state.items or {};
	local answer, err = request(("roster:%s:%s:%s"):format(username, host, state.version or "-"),
		roster_reader());
	if not answer then
		module:log("warn", "roster %s@%s: no answer (%s); roster kept", username, host, err);
		return;
	elseif answer.unknown then
		module:log("info", "roster %s@%s: cloudauth cannot tell now; roster kept", username, host);
		return;
	elseif answer.refused then
		module:log("error", "roster %s@%s: cloudauth refused the request (see its log); roster kept", username, host);
		return;
	elseif answer.unchanged then
		module:log("debug", "roster %s@%s: unchanged", username, host);
		return;
	end
	local roster = rm.load_roster(username, host);
	if not roster then
		module:log("warn", "roster %s@%s: cannot load the roster; not changed", username, host);
		return;
	end
	local me = username .. "@" .. host;
	listed = {}; -- (a sync that raised an error left its own)
	local changed, others, sent, removed = {}, {}, 0, 0;
	for b, bucket in pairs(answer.buckets) do
		for contact, in_bucket in pairs(items) do
			if in_bucket == b and not bucket[contact] then
				items[contact] = nil;
				if roster[contact] then
					roster[contact], changed[contact] = nil, true;
					removed = removed + 1;
				end
				local other = local_user(contact);
				if other then others[other] = false; end
			end
		end
		for contact, item in pairs(bucket) do
			sent = sent + 1;
			if not is_item(roster[contact], item) then
				roster[contact], changed[contact] = provisioned_item(roster[contact], item), true;
				local other = local_user(contact);
				if other then others[other] = { name = answer.own_name, groups = item.groups }; end
			end
			items[contact] = b;
			local other = local_user(contact);
			if other then listed[other] = true; end
		end
	end
	listed[username] = true;
	local ok = rm.save_roster(username, host, roster);
	local failed = 0;
	if ok then
		for contact in pairs(changed) do rm.roster_push(username, host, contact); end
		for other, item in pairs(others) do
			if not set_other_side(other, me, answer.own_bucket, item or nil) then failed = failed + 1; end
		end
	end
	listed = {};
	if not ok then
		module:log("warn", "roster %s@%s: cannot save the roster; version kept", username, host);
		return;
	end
	-- Failures elsewhere: the next sync starts from scratch (buckets are replaced whole, so
	-- nothing is applied twice).
	provisioned:set(username, { version = failed == 0 and answer.version or nil, items = items });
	local n = 0;
	for _ in pairs(changed) do n = n + 1; end
	module:log("info", "roster %s@%s: %d contacts in the changed buckets, %d items changed (%d removed), %d other rosters, %d failed%s",
		username, host, sent, n, removed, (function () local c = 0; for _ in pairs(others) do c = c + 1; end return c; end)(),
		failed, answer.bad > 0 and (", " .. answer.bad .. " unusable lines skipped") or "");
end

if roster_on then
	-- One runner: syncs run one after another, never blocking Prosody; a
	-- user already waiting for his sync is not queued twice.
	local queued = {};
	local runner = async.runner(function (username)
		queued[username] = nil;
		sync_roster(username);
	end, {
		error = function (_, err) module:log("error", "roster sync failed: %s", err); end;
	});
	local function queue(username)
		if queued[username] then return; end
		queued[username] = true;
		runner:run(username);
	end
	module:hook("authentication-success", function (event)
		local username = event.session and event.session.username;
		if username then queue(username); end
	end);
	if roster_refresh > 0 then
		-- Re-reads every roster cloudauth provisioned, so that members who
		-- left a group disappear without anybody's login. The store's users()
		-- is an iterator with a state: collect first, the syncs write the store.
		module:add_timer(roster_refresh, function ()
			if not provisioned.users then
				module:log("error", "roster refresh: this storage cannot list users; refresh off");
				return;
			end
			local users = {};
			for username in provisioned:users() do users[#users + 1] = username; end
			module:log("debug", "roster refresh: %d users", #users);
			for _, username in ipairs(users) do queue(username); end
			return roster_refresh;
		end);
	end
end

-- Departed accounts (cloudauth's --account-sweep found them deleted or
-- disabled in Nextcloud): every `cloudauth_departed_poll` seconds the module
-- asks `departed:HOST:VERSION` for the accounts gone since the version it
-- holds, and closes their sessions as Prosody's mod_c2s does on
-- user-deleted. The event itself is not fired: modules purge a deleted
-- user's data on it, and a disabled account keeps his.
local departed_poll = module:get_option_number("cloudauth_departed_poll", 5);

-- A reader for a departed answer: `!` (sweep off), `0` (an older cloudauth),
-- or `+<TAB>N<TAB>VERSION<TAB>COMPLETE` and N JIDs, one a line.
local function departed_reader()
	local answer, left;
	return function (line)
		if not answer then
			if line == "!" then return true, { off = true }; end
			if line == "0" then return true, { refused = true }; end
			local n, version = line:match("^%+\t(%d+)\t(%d+)\t[01]$");
			if not n then return nil; end
			answer, left = { version = version, jids = {} }, tonumber(n);
			return left == 0, answer;
		end
		left = left - 1;
		answer.jids[#answer.jids + 1] = line;
		return left <= 0, answer;
	end;
end

local function close_sessions(username)
	local user = prosody.hosts[host] and prosody.hosts[host].sessions[username];
	local n = 0;
	if user and user.sessions then
		local sessions = {};
		for _, session in pairs(user.sessions) do sessions[#sessions + 1] = session; end
		for _, session in ipairs(sessions) do
			session:close({ condition = "not-authorized", text = "Account disabled or deleted" });
			n = n + 1;
		end
	end
	return n;
end

if departed_poll > 0 then
	local version; -- nil until cloudauth gave the version to start from
	local busy = false;
	local runner = async.runner(function ()
		local answer, err = request(("departed:%s:%s"):format(host, version or "-"), departed_reader());
		busy = false;
		if type(answer) ~= "table" then
			module:log("debug", "departed accounts: no answer (%s)", tostring(err));
			return;
		end
		if answer.off or answer.refused then
			departed_spoken = false;
			return;
		end
		for _, jid in ipairs(answer.jids) do
			local username = local_user(jid);
			if username then
				module:log("info", "%s: account gone from Nextcloud; %d sessions closed", jid, close_sessions(username));
			end
		end
		version = answer.version;
	end, {
		error = function (_, err) busy = false; module:log("error", "departed accounts: %s", err); end;
	});
	module:add_timer(departed_poll, function ()
		-- Polled only once a connection's hello said cloudauth sweeps.
		if departed_spoken and not busy then
			busy = true;
			runner:run(true);
		elseif not departed_spoken and next(pool) == nil then
			-- No connection yet (no login so far): open one to hear its hello.
			pick();
		end
		return departed_poll;
	end);
end

function module.unload()
	drop_all("module unloaded");
end

module:log("debug", "Using cloudauth at %s (timeout %g s, at most %d connections)", target, timeout,
	max_connections);
module:provides("auth", provider);
