"""kazoo (Python's ZooKeeper client) against menagerie-server.

Usage: python3 kazoo_client.py HOST:PORT
Exits non-zero (with a traceback) on the first failed check.
"""
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoChildrenForEphemeralsError,
                              NodeExistsError, NoNodeError, NotEmptyError,
                              RolledBackError)
from kazoo.protocol.states import EventType

hosts = sys.argv[1]
WAIT = 20


def client():
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=WAIT)
    return c


checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


zk = client()
base = "/kazoo"
zk.ensure_path(base)

# create in every mode
p = zk.create(base + "/persistent", b"p")
check(p == base + "/persistent", "persistent path")
s1 = zk.create(base + "/seq-", b"", sequence=True)
s2 = zk.create(base + "/seq-", b"", sequence=True)
check(s1.endswith("0000000001") and s2.endswith("0000000002"), "sequential names %s %s" % (s1, s2))
e = zk.create(base + "/eph", b"e", ephemeral=True)
es = zk.create(base + "/eph-seq-", b"", ephemeral=True, sequence=True)
check(es.startswith(base + "/eph-seq-") and len(es) == len(base + "/eph-seq-") + 10, "ephemeral sequential name")
path, stat = zk.create(base + "/with-stat", b"xyz", include_data=True)
check(stat.dataLength == 3 and stat.version == 0, "create2 stat")
try:
    zk.create(base + "/persistent", b"")
    check(False, "duplicate create must fail")
except NodeExistsError:
    check(True, "")
try:
    zk.create(base + "/eph/child", b"")
    check(False, "child of ephemeral")
except NoChildrenForEphemeralsError:
    check(True, "")
try:
    zk.create(base + "/missing/child", b"")
    check(False, "missing parent")
except NoNodeError:
    check(True, "")

# get / set / delete with versions
data, stat = zk.get(base + "/persistent")
check(data == b"p" and stat.version == 0, "get")
stat = zk.set(base + "/persistent", b"p2", version=0)
check(stat.version == 1, "set with version")
try:
    zk.set(base + "/persistent", b"p3", version=0)
    check(False, "stale set")
except BadVersionError:
    check(True, "")
try:
    zk.delete(base + "/persistent", version=0)
    check(False, "stale delete")
except BadVersionError:
    check(True, "")
zk.delete(base + "/persistent", version=1)
check(zk.exists(base + "/persistent") is None, "deleted")
try:
    zk.delete(base)
    check(False, "delete of a node with children")
except NotEmptyError:
    check(True, "")

# children
kids = sorted(zk.get_children(base))
check(base.split("/")[-1] not in kids and "eph" in kids and len(kids) == 5, "children %r" % kids)
kids, stat = zk.get_children(base, include_data=True)
check(stat.numChildren == len(kids), "getChildren2 stat")

# watches
fired = []
ev = threading.Event()


def data_watch(event):
    fired.append((event.type, event.path))
    ev.set()


zk.get(base + "/with-stat", watch=data_watch)
zk.set(base + "/with-stat", b"new")
check(ev.wait(WAIT), "data watch fired")
check(fired == [(EventType.CHANGED, base + "/with-stat")], "data watch event %r" % fired)
ev.clear()
fired.clear()
zk.get_children(base, watch=data_watch)
zk.create(base + "/newchild", b"")
check(ev.wait(WAIT), "child watch fired")
check(fired == [(EventType.CHILD, base)], "child watch event %r" % fired)
ev.clear()
fired.clear()
zk.exists(base + "/later", watch=data_watch)
zk.create(base + "/later", b"")
check(ev.wait(WAIT), "exists watch fired")
check(fired == [(EventType.CREATED, base + "/later")], "exists watch event %r" % fired)

# transactions
t = zk.transaction()
t.create(base + "/txn", b"t")
t.check(base + "/with-stat", 1)
t.set_data(base + "/txn", b"t2")
results = t.commit()
check(results[0] == base + "/txn" and results[1] is True, "transaction results %r" % results)
check(zk.get(base + "/txn")[0] == b"t2", "transaction applied")
t = zk.transaction()
t.create(base + "/txn-never", b"")
t.check(base + "/with-stat", 99)
results = t.commit()
check(isinstance(results[0], RolledBackError) and isinstance(results[1], BadVersionError),
      "failed transaction results %r" % results)
check(zk.exists(base + "/txn-never") is None, "failed transaction not applied")

# ephemerals go when their session closes
other = client()
check(other.exists(e) is not None, "ephemeral visible to others")
gone = threading.Event()
other.exists(e, watch=lambda event: gone.set() if event.type == EventType.DELETED else None)
zk.stop()
zk.close()
check(gone.wait(WAIT), "ephemeral deleted on session close (watch)")
check(other.exists(e) is None and other.exists(es) is None, "ephemerals gone")
other.delete(base, recursive=True)
check(other.exists(base) is None, "recursive delete")
other.stop()
other.close()
print("kazoo: %d checks passed" % checks)
