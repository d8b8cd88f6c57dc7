#!/usr/bin/env python3
"""WAL frames SQLite writes per contact update (a last interaction moved), with and without
migration 0010 (which drops `contacts_last_interaction`).

    python3 benches/contact_frames.py

100,000 contacts, then 20,000 updates of random contacts in groups of 100 (the shape of the inbox
processor's completion), checkpoints off; the WAL's growth divided by the frame size.
"""
import glob, os, random, sqlite3, sys, tempfile
ROOT=os.path.dirname(os.path.dirname(os.path.abspath(__file__))); FRAME=4096+24
def run(drop):
    path=os.path.join(tempfile.mkdtemp(),"f.db"); c=sqlite3.connect(path,isolation_level=None)
    for p in ("journal_mode=WAL","wal_autocheckpoint=0"): c.execute("PRAGMA "+p)
    for f in sorted(glob.glob(ROOT+"/migrations/sqlite/*.sql")):
        if not drop and "0010" in f: continue
        c.executescript(open(f).read())
    random.seed(1)
    c.execute("BEGIN")
    c.executemany("INSERT INTO contacts (user_id, follows, first_seen, last_interaction, interaction_count, updated_at) VALUES (?,1,1,?,1,1)",
                  ((str(6142494823000000000+i), random.randrange(10**6)) for i in range(100000)))
    c.execute("COMMIT"); c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal=path+"-wal"; before=os.path.getsize(wal); t=2*10**6
    for b in range(200):
        c.execute("BEGIN")
        for _ in range(100):
            t+=1; c.execute("UPDATE contacts SET last_interaction=?, interaction_count=interaction_count+1 WHERE user_id=?",(t,str(6142494823000000000+random.randrange(100000))))
        c.execute("COMMIT")
    print("drop" if drop else "keep", f"{(os.path.getsize(wal)-before)/FRAME/20000:.2f} frames per contact update (groups of 100, 100,000 contacts)")
run(False); run(True)
