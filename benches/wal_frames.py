#!/usr/bin/env python3
"""WAL frames SQLite writes per inbox event, stored and completed, on the real migrations.

    python3 benches/wal_frames.py [current] [merged] [steady] [contacts]

`current` is the schema as migrated; `merged` replaces the two per-user inbox indexes
(`inbox_lane`, `inbox_user`) by one on (user_id, status, id). 200,000 done events are stored
first, then 20,000 are stored in groups of 20 and completed in groups of 100 (the shapes of the
intake's group commit and the processor's completion), with checkpoints off; the WAL's growth
divided by the page frame size gives the frames.

`steady` is the intake's steady state: events stored in groups of 20 while the processor keeps
up (completed 200 at a time, so few are pending), after 300,000 done events, for 5,000 users with
sequential message ids (the shape of `gen_webhooks.py`) and for 50,000 users with random ones
(Zalo's real message ids), on the schema as migrated and without the per-user history index
`inbox_user` (the admin timeline's), to show what that index costs each stored event.

`contacts` moves the last interaction of random contacts among 100,000, 20,000 updates in
groups of 100 (the contact side of a completion), on the schema before migration 0010 (which
drops `contacts_last_interaction`) and as migrated.
"""
import glob
import json
import os
import random
import sqlite3
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME = 4096 + 24  # page + frame header
BODY = ('{"event_name":"user_send_text","sender":{"id":"%s"},'
        '"message":{"msg_id":"%s","text":"xin chao shop oi"},"timestamp":"1"}')
INSERT = ("INSERT INTO inbox (dedupe_key, event_name, user_id, priority, body, event_ts,"
          " received_at%s) VALUES (?, ?, ?, ?, ?, ?, ?%s)")


def event():
    u, k = str(random.randrange(100000)), "k%x" % random.getrandbits(64)
    return (k, "user_send_text", u, 0, BODY % (u, k), 1, 1)


def migrated(upto="9999"):
    """A new database in WAL mode, checkpoints off, with the migrations numbered up to `upto`."""
    path = os.path.join(tempfile.mkdtemp(), "frames.db")
    c = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "wal_autocheckpoint=0", "synchronous=FULL"):
        c.execute("PRAGMA " + pragma)
    for f in sorted(glob.glob(os.path.join(ROOT, "migrations/sqlite/*.sql"))):
        if os.path.basename(f)[:4] <= upto:
            c.executescript(open(f).read())
    return c, path + "-wal"


def contacts(upto, label):
    c, wal = migrated(upto)
    random.seed(1)
    user = lambda i: str(6142494823000000000 + i)
    c.execute("BEGIN")
    c.executemany("INSERT INTO contacts (user_id, follows, first_seen, last_interaction,"
                  " interaction_count, updated_at) VALUES (?, 1, 1, ?, 1, 1)",
                  ((user(i), random.randrange(10**6)) for i in range(100000)))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before, at, n = os.path.getsize(wal), 2 * 10**6, 20000
    for _ in range(n // 100):
        c.execute("BEGIN")
        for _ in range(100):
            at += 1
            c.execute("UPDATE contacts SET last_interaction = ?,"
                      " interaction_count = interaction_count + 1 WHERE user_id = ?",
                      (at, user(random.randrange(100000))))
        c.execute("COMMIT")
    print(f"contacts ({label}): {(os.path.getsize(wal) - before) / FRAME / n:.2f} frames/update")


# A body of the size `gen_webhooks.py` writes (the rows per table page follow from it).
STEADY_BODY = ('{"app_id":"1234567890123456789","sender":{"id":"%s"},'
               '"user_id_by_app":"979122185046046317","recipient":{"id":"3662729599332560487"},'
               '"event_name":"user_send_text","message":{"text":"Cho minh hoi gia","msg_id":"%s"},'
               '"timestamp":"1764650000000"}')
# Stored leased to the processor, as the intake's hand-over stores them.
STEADY_INSERT = INSERT % (", lease_owner, lease_until, attempts", ", 'p', 1, 1")


def steady(label, users, sequential, n=60000, batch=20, completion=200):
    c, wal = migrated()
    if label != "as migrated":
        c.executescript("DROP INDEX inbox_user;")
    random.seed(1)
    count = 0

    def event():
        nonlocal count
        count += 1
        u = str(6142494823000000000 + (count % users if sequential else random.randrange(users)))
        k = "bench%012d" % count if sequential else "%032x" % random.getrandbits(128)
        return ("user_send_text:" + k, "user_send_text", u, 0, STEADY_BODY % (u, k), 1, 1)

    c.execute("BEGIN")
    c.executemany(STEADY_INSERT, (event() for _ in range(300000)))
    c.execute("UPDATE inbox SET status = 'done', lease_owner = NULL")
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = completed = 0
    pending = []
    for _ in range(n // batch):
        before = os.path.getsize(wal)
        c.execute("BEGIN")
        for e in [event() for _ in range(batch)]:
            pending.append(c.execute(STEADY_INSERT, e).lastrowid)
        c.execute("COMMIT")
        after = os.path.getsize(wal)
        stored += after - before
        if len(pending) >= completion:
            c.execute("BEGIN")
            c.execute("UPDATE inbox SET status = 'done', processed_at = 1, lease_owner = NULL"
                      " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(pending),))
            c.execute("COMMIT")
            pending = []
            completed += os.path.getsize(wal) - after
        if os.path.getsize(wal) > 256 * 2**20:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shape = f"{users:,} users, {'sequential' if sequential else 'random'} ids"
    print(f"steady ({label}; {shape}): stored {stored / FRAME / n:.2f} frames/event,"
          f" completed {completed / FRAME / n:.2f} frames/event")


def run(variant):
    if variant == "steady":
        for users, sequential in [(5000, True), (50000, False)]:
            steady("as migrated", users, sequential)
            steady("without inbox_user", users, sequential)
        return
    if variant == "contacts":
        contacts("0009", "before 0010")
        contacts("9999", "as migrated")
        return
    c, wal = migrated()
    if variant == "merged":
        c.executescript("DROP INDEX inbox_lane; DROP INDEX inbox_user;"
                        " CREATE INDEX inbox_user ON inbox (user_id, status, id);")
    random.seed(1)
    c.execute("BEGIN")
    c.executemany(INSERT % (", status", ", 'done'"), (event() for _ in range(200000)))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = os.path.getsize(wal)
    n = 20000
    for _ in range(n // 20):
        c.execute("BEGIN")
        c.executemany(INSERT % ("", ""), [event() for _ in range(20)])
        c.execute("COMMIT")
    stored = os.path.getsize(wal)
    pending = [r[0] for r in c.execute("SELECT id FROM inbox WHERE status = 'pending' ORDER BY id")]
    for i in range(0, len(pending), 100):
        c.execute("BEGIN")
        c.execute("UPDATE inbox SET status = 'done', processed_at = 1, lease_owner = NULL"
                  " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(pending[i:i + 100]),))
        c.execute("COMMIT")
    completed = os.path.getsize(wal)
    print(f"{variant}: stored {(stored - before) / FRAME / n:.2f} frames/event,"
          f" completed {(completed - stored) / FRAME / n:.2f} frames/event")


for v in sys.argv[1:] or ["current", "merged"]:
    run(v)
