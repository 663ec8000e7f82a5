"""redis-py against a gsmo node: every command family, errors as Redis words
them, and pipelines (transaction=False: gsmo has no MULTI). Run by
tests/tests/redis_py.rs as `python3 redis_py_commands.py PORT0 PORT1 [PROTOCOL]`
(no PROTOCOL: redis-py's default, RESP3 since redis-py 8); exits non-zero with
the failing assertion on any mismatch."""
import sys

import redis

proto = {"protocol": int(sys.argv[3])} if len(sys.argv) > 3 else {}
a = redis.Redis(port=int(sys.argv[1]), socket_timeout=30, **proto)
b = redis.Redis(port=int(sys.argv[2]), socket_timeout=30, **proto)
# The protocol the connection speaks, as the server's HELLO reports it.
hello = a.execute_command("HELLO")
if not isinstance(hello, dict):
    hello = dict(zip(hello[::2], hello[1::2]))
spoken = int(hello.get(b"proto", hello.get("proto")))
default = 3 if int(redis.__version__.split(".")[0]) >= 8 else 2
assert spoken == proto.get("protocol", default), hello


def err(fn, *args):
    try:
        fn(*args)
    except redis.ResponseError as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not fail")


assert a.ping()
assert a.echo("hi") == b"hi"
assert a.client_setname("py") and a.client_getname() == "py"
assert isinstance(a.client_id(), int)
assert a.execute_command("SELECT", 0)
t = a.time()
assert t[0] > 1_600_000_000

# strings and keys
assert a.set("s", "v") and a.get("s") == b"v"
assert a.set("s", "w", nx=True) is None
assert a.set("s", "w", xx=True, get=True) == b"v"
assert a.getset("s", "x") == b"w"
assert a.setnx("s", "y") is False and a.setnx("n1", "1") is True
assert a.mset({"m1": "1", "m2": "2"}) and a.mget("m1", "nope", "m2") == [b"1", None, b"2"]
assert a.msetnx({"m1": "9", "m3": "3"}) is False
assert a.append("s", "yz") == 3 and a.strlen("s") == 3
assert a.incr("c") == 1 and a.incrby("c", 10) == 11 and a.decr("c") == 10 and a.decrby("c", 5) == 5
assert a.getdel("c") == b"5" and a.get("c") is None
assert a.exists("s", "s", "nope") == 2 and a.type("s") == b"string" and a.type("nope") == b"none"
assert a.rename("s", "s2") and a.get("s2") == b"xyz"
assert sorted(a.keys("m*")) == [b"m1", b"m2"]
seen, cursor = set(), 0
while True:
    cursor, keys = a.scan(cursor, match="*", count=2)
    seen.update(keys)
    if cursor == 0:
        break
assert seen == set(a.keys("*")), (seen, a.keys("*"))
assert a.ttl("s2") == -1 and a.ttl("nope") == -2
assert "does not expire keys" in err(a.set, "e", "v", 10)
assert "does not expire keys" in err(a.expire, "s2", 10)
assert a.delete("m1", "nope") == 1 and a.unlink("m2") == 1
assert "wrong number of arguments for 'get' command" in err(a.execute_command, "GET")
assert err(a.incr, "s2") == "value is not an integer or out of range"

# lists
assert a.lpush("l", "a", "b") == 2 and a.rpush("l", "c") == 3
assert a.lrange("l", 0, -1) == [b"b", b"a", b"c"] and a.llen("l") == 3
assert a.lpop("l") == b"b" and a.rpop("l", 2) == [b"c", b"a"] and a.lpop("l") is None
# sets: SPOP takes the smallest member, the same on every replica
assert a.sadd("set", "y", "x", "z") == 3 and a.scard("set") == 3
assert a.sismember("set", "x") and not a.sismember("set", "q")
assert a.smembers("set") == {b"x", b"y", b"z"}
assert a.spop("set") == b"x"
# hashes
assert a.hset("h", mapping={"f1": "1", "f2": "2"}) == 2 and a.hget("h", "f1") == b"1"
assert a.hgetall("h") == {b"f1": b"1", b"f2": b"2"} and a.hlen("h") == 2
assert a.hdel("h", "f1", "nope") == 1
# sorted sets
assert a.zadd("z", {"a": 1, "b": 2.5, "c": 0}) == 3 and a.zcard("z") == 3
assert a.zrange("z", 0, -1) == [b"c", b"a", b"b"]
assert a.zrange("z", 0, -1, withscores=True) == [(b"c", 0.0), (b"a", 1.0), (b"b", 2.5)]
assert a.zscore("z", "b") == 2.5 and a.zpopmin("z") == [(b"c", 0.0)]
# wrong types
assert err(a.lpush, "h", "x").startswith("WRONGTYPE Operation against a key holding the wrong kind of value")
assert err(a.get, "l2" if a.rpush("l2", "x") else "l2").startswith("WRONGTYPE")
assert err(a.hget, "set", "f").startswith("WRONGTYPE")

# pipelines: replies in order, errors in place
p = a.pipeline(transaction=False)
for i in range(200):
    p.set(f"p{i}", i).incr("pc").rpush("pl", i)
p.get("p199").llen("pl").get("set")
out = p.execute(raise_on_error=False)
assert out[:3] == [True, 1, 1] and out[-3] == b"199" and out[-2] == 200, out[-3:]
assert isinstance(out[-1], redis.ResponseError) and "WRONGTYPE" in str(out[-1])

# the other replica converges
for _ in range(3000):
    if b.llen("pl") == 200 and b.get("pc") == b"200":
        break
    import time
    time.sleep(0.01)
assert b.llen("pl") == 200 and b.get("pc") == b"200"
assert b.lrange("pl", 0, 2) == [b"0", b"1", b"2"]
assert a.dbsize() == b.dbsize()
assert a.flushall() and a.dbsize() == 0
print(f"redis-py {redis.__version__} over RESP{spoken}: all commands and pipelines ok")
