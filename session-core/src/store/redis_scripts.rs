//! The Lua scripts of [`RedisStore`](super::RedisStore): every change to a session and its
//! user's index runs as one script, so replicas never see half of it. Kept apart from the
//! store's Rust code because they are a schema of their own (the key schema is in the store's
//! module docs) and are read and changed on their own.

// The current time in milliseconds from the server's clock.
macro_rules! lua_now {
    () => {
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

// Pushes the user set's expiry to at least `exp` (a set without expiry gets one).
macro_rules! lua_extend_user {
    () => {
        "local function extend_user(key, exp, now)\n\
           local left = redis.call('PTTL', key)\n\
           if left ~= -2 and (left < 0 or left < exp - now) then\n\
             redis.call('PEXPIREAT', key, string.format('%d', exp))\n\
           end\n\
         end\n"
    };
}

// Converts a user index still in the schema before the sessions bound (a set) into the
// sorted set this version keeps, in place and atomically (it runs inside the calling script):
// every member whose session still exists is scored by its `created_at` (in microseconds, as
// CREATE scores), the dead ones are dropped, and the key keeps its expiry. A sorted set is left
// alone, so after the first touch this costs one TYPE.
macro_rules! lua_user_index {
    () => {
        "local function user_index(key, sprefix)\n\
           if redis.call('TYPE', key).ok ~= 'set' then return end\n\
           local ids = redis.call('SMEMBERS', key)\n\
           local left = redis.call('PTTL', key)\n\
           redis.call('DEL', key)\n\
           for _, h in ipairs(ids) do\n\
             if redis.call('EXISTS', sprefix .. h) == 1 then\n\
               local c = tonumber(redis.call('HGET', sprefix .. h, 'created_at')) or 0\n\
               redis.call('ZADD', key, string.format('%d', c * 1000), h)\n\
             end\n\
           end\n\
           if left > 0 and redis.call('EXISTS', key) == 1 then\n\
             redis.call('PEXPIRE', key, left)\n\
           end\n\
         end\n"
    };
}

// The revocation channel's message for `payload`, stamped with the server's time in
// microseconds (`@<µs> <payload>`), so that every replica can measure how long it took to
// hear of it (`gateway_revocation_propagation_seconds`).
macro_rules! lua_stamp {
    () => {
        "local function stamp(payload)\n\
           local st = redis.call('TIME')\n\
           return '@' .. st[1] .. string.format('%06d', tonumber(st[2])) .. ' ' .. payload\n\
         end\n"
    };
}

// Ends one session: deletes its hash, removes it from its user's index (`ukey`, if known) and
// publishes its hex hash on the revocation channel, so that every replica drops its cached copy
// and closes its WebSockets. REVOKE and CREATE's eviction of the oldest both end sessions with
// it. Returns 1 if a session hash was deleted.
macro_rules! lua_revoke_one {
    () => {
        "local function revoke_one(skey, hex, ukey, channel)\n\
           local n = redis.call('DEL', skey)\n\
           if ukey then redis.call('ZREM', ukey, hex) end\n\
           redis.call('PUBLISH', channel, stamp(hex))\n\
           return n\n\
         end\n"
    };
}

/// KEYS: session, user. ARGV: hex, user_id, roles, default_role, ttl ms, max_per_user, channel,
/// variables (a JSON object, or empty for none: then the hash has no `variables` field, exactly
/// as before variables existed). Returns {now, exp, {hex of each session revoked to stay within
/// max_per_user}}.
///
/// The user's index is a sorted set scored by creation time (microseconds from the server's
/// clock, so two creates in one millisecond still have an order). Sessions expire by
/// themselves, but their hashes stay in the index, and every new session keeps it alive. So each
/// create first checks the three oldest members (the likeliest to have expired) and drops those
/// whose session is gone. When the index is at the bound, every member is checked (dead ones do
/// not count), and the oldest live sessions beyond `max_per_user - 1` are revoked, so the index
/// never holds more than `max_per_user` members. The script is atomic: concurrent creates for
/// one user never leave more than the bound.
pub(super) const CREATE: &str = concat!(
    lua_now!(),
    lua_extend_user!(),
    lua_user_index!(),
    lua_stamp!(),
    lua_revoke_one!(),
    "local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n\
     local sprefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])\n\
     local max = tonumber(ARGV[6])\n\
     user_index(KEYS[2], sprefix)\n\
     for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, 2)) do\n\
       if redis.call('EXISTS', sprefix .. h) == 0 then redis.call('ZREM', KEYS[2], h) end\n\
     end\n\
     local evicted = {}\n\
     local n = redis.call('ZCARD', KEYS[2])\n\
     if n >= max then\n\
       for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n\
         if redis.call('EXISTS', sprefix .. h) == 0 then\n\
           redis.call('ZREM', KEYS[2], h)\n\
           n = n - 1\n\
         end\n\
       end\n\
       if n >= max then\n\
         for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - max)) do\n\
           revoke_one(sprefix .. h, h, KEYS[2], ARGV[7])\n\
           table.insert(evicted, h)\n\
         end\n\
       end\n\
     end\n\
     local exp = now + tonumber(ARGV[5])\n\
     redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'roles', ARGV[3], 'default_role', ARGV[4],\n\
       'created_at', string.format('%d', now), 'expires_at', string.format('%d', exp))\n\
     if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'variables', ARGV[8]) end\n\
     redis.call('PEXPIREAT', KEYS[1], string.format('%d', exp))\n\
     redis.call('ZADD', KEYS[2], string.format('%d', now_us), ARGV[1])\n\
     extend_user(KEYS[2], exp, now)\n\
     return {now, exp, evicted}\n"
);

/// KEYS: session. ARGV: ttl ms, granularity ms, user prefix. Returns the fields (nil if none),
/// after moving the expiry to now + ttl when that is more than `granularity` later. With an
/// empty user prefix (Cluster mode: the user's index may live on another node) the index is
/// left alone and a seventh element, `1`, says that the expiry moved: the caller extends the
/// index with [`EXTEND_USER`].
pub(super) const RESOLVE_SLIDE: &str = concat!(
    lua_now!(),
    lua_extend_user!(),
    "local v = redis.call('HMGET', KEYS[1], 'user_id', 'roles', 'default_role', 'created_at', 'expires_at', 'variables')\n\
     if not v[1] or not v[5] then return v end\n\
     local want = now + tonumber(ARGV[1])\n\
     local cur = tonumber(v[5]) or 0\n\
     if cur > now and want > cur + tonumber(ARGV[2]) then\n\
       local s = string.format('%d', want)\n\
       redis.call('HSET', KEYS[1], 'expires_at', s)\n\
       redis.call('PEXPIREAT', KEYS[1], s)\n\
       if ARGV[3] ~= '' then extend_user(ARGV[3] .. v[1], want, now) else v[7] = '1' end\n\
       v[5] = s\n\
     end\n\
     return v\n"
);

/// KEYS: session. ARGV: ttl ms, user prefix. Returns {1, user_id, expires_at} if the session
/// lives (its expiry is now at least now + ttl), {0} if not. With an empty user prefix (Cluster
/// mode) the user's index is not extended: the caller does it with [`EXTEND_USER`].
pub(super) const TOUCH: &str = concat!(
    lua_now!(),
    lua_extend_user!(),
    "local v = redis.call('HMGET', KEYS[1], 'user_id', 'expires_at')\n\
     if not v[1] or not v[2] then return {0} end\n\
     local cur = tonumber(v[2]) or 0\n\
     if cur <= now then return {0} end\n\
     local want = now + tonumber(ARGV[1])\n\
     if want > cur then\n\
       local s = string.format('%d', want)\n\
       redis.call('HSET', KEYS[1], 'expires_at', s)\n\
       redis.call('PEXPIREAT', KEYS[1], s)\n\
       if ARGV[2] ~= '' then extend_user(ARGV[2] .. v[1], want, now) end\n\
       cur = want\n\
     end\n\
     return {1, v[1], cur}\n"
);

/// KEYS: session. ARGV: hex, user prefix, channel. Deletes the session, unindexes it and
/// publishes its hash. Returns 1 if a session was deleted.
pub(super) const REVOKE: &str = concat!(
    lua_user_index!(),
    lua_stamp!(),
    lua_revoke_one!(),
    "local sprefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])\n\
     local uid = redis.call('HGET', KEYS[1], 'user_id')\n\
     local ukey = nil\n\
     if uid then\n\
       ukey = ARGV[2] .. uid\n\
       user_index(ukey, sprefix)\n\
     end\n\
     return revoke_one(KEYS[1], ARGV[1], ukey, ARGV[3])\n"
);

/// KEYS: user. ARGV: session prefix, channel, payload. Deletes every session of the user and
/// the index, publishes `user:<id>`. Returns how many sessions were live. An index still in the
/// old schema (a set) is read as it is: it is deleted anyway.
pub(super) const REVOKE_USER: &str = concat!(
    lua_stamp!(),
    "local ids\n\
     if redis.call('TYPE', KEYS[1]).ok == 'set' then\n\
       ids = redis.call('SMEMBERS', KEYS[1])\n\
     else\n\
       ids = redis.call('ZRANGE', KEYS[1], 0, -1)\n\
     end\n\
     local n = 0\n\
     for _, h in ipairs(ids) do n = n + redis.call('DEL', ARGV[1] .. h) end\n\
     redis.call('DEL', KEYS[1])\n\
     redis.call('PUBLISH', ARGV[2], stamp(ARGV[3]))\n\
     return n\n"
);

/// KEYS: user. ARGV: session prefix. Returns {hex, user_id, roles, default_role, created_at,
/// expires_at, variables, ...} for each live session, oldest first (a missing field is an empty
/// string), and removes members whose session is gone.
pub(super) const LIST_USER: &str = concat!(
    lua_user_index!(),
    "user_index(KEYS[1], ARGV[1])\n\
     local ids = redis.call('ZRANGE', KEYS[1], 0, -1)\n\
     local out = {}\n\
     for _, h in ipairs(ids) do\n\
       local v = redis.call('HMGET', ARGV[1] .. h, 'user_id', 'roles', 'default_role', 'created_at', 'expires_at', 'variables')\n\
       if v[1] then\n\
         table.insert(out, h)\n\
         for i = 1, 6 do table.insert(out, v[i] or '') end\n\
       else\n\
         redis.call('ZREM', KEYS[1], h)\n\
       end\n\
     end\n\
     return out\n"
);

// Redis Cluster: every script below touches exactly one key, so that it runs on the node that
// owns the key's slot. A session and its user's index may live on different nodes, so what
// CREATE, REVOKE and REVOKE_USER do in one script is done in steps there (the store's
// `cluster` module), the session always first.

/// Cluster. KEYS: session. ARGV: user_id, roles, default_role, ttl ms, variables (or empty).
/// Writes the session hash with its expiry. Returns {now, exp}.
pub(super) const CLUSTER_SESSION_CREATE: &str = concat!(
    lua_now!(),
    "local exp = now + tonumber(ARGV[4])\n\
     redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'roles', ARGV[2], 'default_role', ARGV[3],\n\
       'created_at', string.format('%d', now), 'expires_at', string.format('%d', exp))\n\
     if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'variables', ARGV[5]) end\n\
     redis.call('PEXPIREAT', KEYS[1], string.format('%d', exp))\n\
     return {now, exp}\n"
);

/// Cluster. KEYS: user. ARGV: hex, the session's expires_at (ms). Adds the session to the
/// index, scored by this node's clock in microseconds (so one user's scores all come from one
/// clock), and extends the index's expiry. Returns the index's size.
pub(super) const CLUSTER_INDEX_ADD: &str = concat!(
    lua_now!(),
    lua_extend_user!(),
    "local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n\
     redis.call('ZADD', KEYS[1], string.format('%d', now_us), ARGV[1])\n\
     extend_user(KEYS[1], tonumber(ARGV[2]), now)\n\
     return redis.call('ZCARD', KEYS[1])\n"
);

/// Cluster. KEYS: user. ARGV: expires_at (ms). Pushes the index's expiry to at least that.
pub(super) const CLUSTER_EXTEND_USER: &str = concat!(
    lua_now!(),
    lua_extend_user!(),
    "extend_user(KEYS[1], tonumber(ARGV[1]), now)\n\
     return 1\n"
);

/// Cluster. KEYS: session. ARGV: hex, channel. Deletes the session and publishes its stamped
/// hash. Returns {deleted (0 or 1), user_id or ''}: the caller then removes it from the index.
pub(super) const CLUSTER_SESSION_REVOKE: &str = concat!(
    lua_stamp!(),
    "local uid = redis.call('HGET', KEYS[1], 'user_id')\n\
     local n = redis.call('DEL', KEYS[1])\n\
     redis.call('PUBLISH', ARGV[2], stamp(ARGV[1]))\n\
     return {n, uid or ''}\n"
);

/// Cluster. KEYS: user. Returns the index's members with their scores (oldest first): a sorted
/// set as it is; a set (the schema before the sessions bound) with scores of 0.
pub(super) const CLUSTER_INDEX_MEMBERS: &str = "if redis.call('TYPE', KEYS[1]).ok == 'set' then\n\
       local out = {}\n\
       for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n\
         table.insert(out, h)\n\
         table.insert(out, '0')\n\
       end\n\
       return out\n\
     end\n\
     return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n";

/// Cluster. KEYS: user. ARGV: hex… Removes these members from the index (a set or a sorted
/// set). Returns how many were removed.
pub(super) const CLUSTER_INDEX_REMOVE: &str = "if #ARGV == 0 then return 0 end\n\
     if redis.call('TYPE', KEYS[1]).ok == 'set' then\n\
       return redis.call('SREM', KEYS[1], unpack(ARGV))\n\
     end\n\
     return redis.call('ZREM', KEYS[1], unpack(ARGV))\n";

/// Cluster. ARGV: channel, payload. Publishes the payload stamped with the server's time.
/// Keyless: runs on any node, and a Cluster broadcasts PUBLISH to every node.
pub(super) const CLUSTER_PUBLISH: &str = concat!(
    lua_stamp!(),
    "redis.call('PUBLISH', ARGV[1], stamp(ARGV[2]))\n\
     return 1\n"
);
