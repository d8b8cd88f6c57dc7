#!/usr/bin/env python3
"""Writes N distinct, correctly signed Zalo webhook deliveries, one per line: `<mac>\t<body>`.

Usage: gen_webhooks.py N APP_ID OA_SECRET_KEY OUT [USERS]
"""
import hashlib, json, sys, time

n, app_id, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
users = int(sys.argv[5]) if len(sys.argv) > 5 else 5000
now = int(time.time() * 1000)
texts = ["Chào shop", "Cho mình hỏi giá", "Còn hàng không ạ?", "Ship về Hà Nội bao lâu?"]
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):
        ts = str(now + i)
        body = json.dumps({
            "app_id": app_id,
            "sender": {"id": str(6142494823000000000 + i % users)},
            "user_id_by_app": "979122185046046317",
            "recipient": {"id": "3662729599332560487"},
            "event_name": "user_send_text",
            "message": {"text": texts[i % len(texts)], "msg_id": "bench%012d" % i},
            "timestamp": ts,
        }, ensure_ascii=False, separators=(",", ":"))
        mac = hashlib.sha256((app_id + body + ts + key).encode()).hexdigest()
        f.write("mac=%s\t%s\n" % (mac, body))
