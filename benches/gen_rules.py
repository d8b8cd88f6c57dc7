#!/usr/bin/env python3
"""Writes N rules (default 1,000) of mixed triggers into DIR/generated.yaml, the shipped
greetings among them: what a large shop's rules folder could hold. Used by scripts/bench for
the start-to-ready figure.

Usage: gen_rules.py DIR [N]
"""
import os, sys

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
os.makedirs(out, exist_ok=True)
rules = []
for frm, to, text in [("05:00", "10:59", "Chào buổi sáng"), ("11:00", "13:59", "Chào buổi trưa"),
                      ("17:00", "21:59", "Chào buổi tối")]:
    rules.append(f'    when: message\n    if:\n      time_between: ["{frm}", "{to}"]\n'
                 f'    do:\n      - send: {text} {{{{display_name | "bạn"}}}}!\n    once_per: period\n')
kinds = [
    lambda i: f"    when:\n      message: {{equals: menu {i}}}\n    do:\n      - send: Thực đơn số {i}\n",
    lambda i: f"    when:\n      message: {{contains: [từ khóa {i}, keyword{i}]}}\n    do:\n      - tag: kw{i % 50}\n",
    lambda i: f"    when: {{tag_added: tag{i % 100}}}\n    if:\n      follows: true\n    do:\n      - notify: Khách {{{{display_name}}}} có thẻ tag{i % 100}\n",
    lambda i: f"    when: {{form_submitted: form{i % 40}}}\n    do:\n      - tag: from_form\n      - wait: 1d\n      - sms: Cảm ơn bạn đã đăng ký\n",
    lambda i: f"    when: follow\n    if:\n      has_tag: segment{i}\n    do:\n      - send: Chào mừng nhóm {i}\n",
]
i = 0
while len(rules) < n:
    rules.append(kinds[i % len(kinds)](i))
    i += 1
with open(os.path.join(out, "generated.yaml"), "w", encoding="utf-8") as f:
    f.write("rules:\n")
    for k, body in enumerate(rules):
        f.write(f"  - id: g{k}\n{body}")
