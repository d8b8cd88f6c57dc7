"""aiosmtpd handler for tests/channels.rs: writes each received message as JSON into a folder.

Run as: PYTHONPATH=tests python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_server.SaveToDir DIR

Each message becomes DIR/<n>.json (written atomically) with the envelope and the parsed MIME
parts, so the Rust test checks subject, recipients and both bodies without a MIME parser.
"""

import email
import email.policy
import itertools
import json
import os


class SaveToDir:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("SaveToDir takes one argument: the folder to write messages into")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({"content_type": part.get_content_type(),
                          "content": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "content_type": msg.get_content_type(),
            "parts": parts,
        }
        n = next(self.counter)
        tmp = os.path.join(self.directory, f".{n}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.replace(tmp, os.path.join(self.directory, f"{n}.json"))
        return "250 Message accepted for delivery"
