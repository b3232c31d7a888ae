-- mod_auth_cloudauth: Prosody 0.12 and 13 authentication against Nextcloud/JSXC
-- through a long-running cloudauth (`cloudauth --listen generic=ADDR`).
--
-- The "generic" protocol is one line per request, `auth:USER:DOMAIN:PASSWORD`
-- or `isuser:USER:DOMAIN`, answered by `1` or `0` in request order. Because
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
		local done, answer; -- done stays nil for a line that answers nothing
		if req and req.roster then
			done, answer = req.roster(line);
		elseif req and (line == "1" or line == "0") then
			done, answer = true, line == "1";
		end
		if done == nil or not req then
			module:log("error", "Unexpected answer from cloudauth at %s; dropping the connection", target);
			return drop(link, "protocol error");
		end
		if done then
			table.remove(link.pending, 1);
			finish(req, answer);
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
-- a protocol error), the answer may span several lines.
local function request(line, reader)
	if not async.ready() then
		return nil, "cloudauth needs an async context";
	end
	local link, err = pick();
	if not link then return nil, err; end
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

function provider.test_password(username, password)
	if bad_user(username) or type(password) ~= "string" or password:find("[\r\n]") then
		module:log("debug", "Refusing malformed credentials without asking cloudauth");
		return nil, "Auth failed. Invalid username or password.";
	end
	local ok, err = request(("auth:%s:%s:%s"):format(username, host, password));
	if err then
		module:log("warn", "auth %s@%s: no answer (%s), refusing", username, host, err);
		return nil, "Auth failed. Authentication service unavailable.";
	end
	module:log("debug", "auth %s@%s: %s", username, host, ok and "yes" or "no");
	if ok then return true; end
	return nil, "Auth failed. Invalid username or password.";
end

function provider.user_exists(username)
	if bad_user(username) then return nil, "Invalid username"; end
	local ok, err = request(("isuser:%s:%s"):format(username, host));
	if err then
		module:log("warn", "isuser %s@%s: no answer (%s)", username, host, err);
		return nil, err;
	end
	if ok then return true; end
	return nil, "User does not exist";
end

-- Accounts live in Nextcloud.
function provider.set_password() return nil, "not supported"; end
function provider.create_user() return nil, "not supported"; end
function provider.delete_user() return nil, "not supported"; end
function provider.users() return function() return nil; end; end

function provider.get_sasl_handler()
	return new_sasl(host, {
		plain_test = function (_, username, password)
			return provider.test_password(username, password) == true, true;
		end;
	});
end

-- Shared roster (cloudauth_roster = true): see prosody/README.md. The
-- rules (which groups, which members, which names) are cloudauth's; this
-- only stores what it answers. The contacts cloudauth put into each roster
-- are remembered per user, so that only those are ever removed, and with
-- the answer's version, so that an unchanged roster costs one short line.
local roster_on = module:get_option_boolean("cloudauth_roster", false);
local roster_refresh = module:get_option_number("cloudauth_roster_refresh", 0);
local rm = require "core.rostermanager";
local provisioned = module:open_store("cloudauth_roster");

-- A reader for a roster answer: `=`, `!`, or a header and COUNT item lines.
local function roster_reader()
	local got, want, answer;
	return function (line)
		if not answer then
			if line == "=" then return true, { unchanged = true }; end
			if line == "!" then return true, { unknown = true }; end
			local version, count, own = line:match("^%+\t([^\t]*)\t(%d+)\t(.*)$");
			if not version then return nil; end
			answer, got, want = { version = version, own_name = own, items = {} }, 0, tonumber(count);
			return want == 0, answer;
		end
		local fields = {};
		for f in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = f; end
		local jid, name = fields[1], fields[2];
		if not jid or jid == "" or not name then return nil; end
		local groups = {};
		for i = 3, #fields do groups[fields[i]] = true; end
		answer.items[jid] = { name = name ~= "" and name or nil, groups = groups };
		got = got + 1;
		return got >= want, answer;
	end;
end

-- Put `contact` into `username`'s roster (or take him out with item nil),
-- save and push it to his online resources.
local function set_item(username, contact, item)
	local roster = rm.load_roster(username, host);
	if not roster then return false; end
	local old = roster[contact];
	if item then
		roster[contact] = { subscription = "both", name = item.name, groups = item.groups,
			approved = old and old.approved or nil };
	elseif old then
		roster[contact] = nil;
	else
		return true;
	end
	local ok = rm.save_roster(username, host, roster, contact);
	if ok then rm.roster_push(username, host, contact); end
	return ok;
end

-- The local user behind a JID of this host, or nil.
local function local_user(jid)
	local user, domain = jid:match("^([^@/]+)@([^@/]+)$");
	return domain == host and user or nil;
end

-- Ask cloudauth for username's shared roster and store it, on both sides:
-- each contact of this host gets username too, so colleagues see each other
-- after either one's login, and a member who left disappears from both
-- rosters without his own login.
local function sync_roster(username)
	local state = provisioned:get(username) or { items = {} };
	local answer, err = request(("roster:%s:%s:%s"):format(username, host, state.version or "-"),
		roster_reader());
	if not answer then
		module:log("warn", "roster %s@%s: no answer (%s); roster kept", username, host, err);
		return;
	end
	if answer.unknown then
		module:log("info", "roster %s@%s: cloudauth cannot tell now; roster kept", username, host);
		return;
	end
	if answer.unchanged then
		module:log("debug", "roster %s@%s: unchanged", username, host);
		return;
	end
	local me = username .. "@" .. host;
	local kept, added, removed = {}, 0, 0;
	for contact, item in pairs(answer.items) do
		if set_item(username, contact, item) then
			kept[contact] = true;
			added = added + 1;
		end
		local other = local_user(contact);
		if other then
			local theirs = provisioned:get(other) or { items = {} };
			if set_item(other, me, { name = answer.own_name ~= "" and answer.own_name or nil, groups = item.groups }) then
				theirs.items[me] = true;
				provisioned:set(other, theirs);
			end
		end
	end
	for contact in pairs(state.items) do
		if not kept[contact] then
			set_item(username, contact, nil);
			removed = removed + 1;
			local other = local_user(contact);
			local theirs = other and provisioned:get(other);
			if theirs and theirs.items[me] then
				set_item(other, me, nil);
				theirs.items[me] = nil;
				provisioned:set(other, theirs);
			end
		end
	end
	provisioned:set(username, { version = answer.version, items = kept });
	module:log("info", "roster %s@%s: version %s, %d contacts, %d removed", username, host,
		answer.version:sub(1, 12), added, removed);
end

if roster_on then
	-- One runner: syncs run one after another, never blocking Prosody.
	local runner = async.runner(function (username) sync_roster(username); end);
	module:hook("authentication-success", function (event)
		local username = event.session and event.session.username;
		if username then runner:run(username); end
	end);
	if roster_refresh > 0 then
		-- Re-reads the rosters cloudauth provisioned before, so that members
		-- who left a group disappear without anybody's login.
		module:add_timer(roster_refresh, function ()
			local ok, users = pcall(provisioned.users, provisioned);
			if ok and users then
				for username in users do runner:run(username); end
			end
			return roster_refresh;
		end);
	end
end

function module.unload()
	drop_all("module unloaded");
end

module:log("debug", "Using cloudauth at %s (timeout %g s, at most %d connections)", target, timeout,
	max_connections);
module:provides("auth", provider);
