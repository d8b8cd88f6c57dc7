-- Agents are people (issue 30): each agent signs in to the board with a name and a password
-- (an Argon2id PHC string: algorithm, parameters, salt and hash; never the password). A
-- session is a random token in the agent's cookie; only its SHA-256 is kept, with its expiry.
-- A disabled agent's sessions stop working at once (the lookup joins the agent); revoking
-- deletes them.
CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    disabled_at INTEGER
);
CREATE TABLE agent_sessions (
    token_sha256 TEXT PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);
