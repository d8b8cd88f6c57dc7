-- The OA's connection (docs/connect-oa.md): which OA the stored tokens belong to, when it was
-- connected through /admin/zalo/connect, the last token refresh and its outcome, and whether a
-- person must connect it again (permission revoked, or a refresh Zalo refused). While
-- revoked_at is set, Zalo OA jobs wait in the outbox (never attempted, never dead-lettered).
CREATE TABLE oa_connection (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    oa_id              TEXT,
    connected_at       BIGINT,
    last_refresh_at    BIGINT,
    -- NULL: the last refresh succeeded
    last_refresh_error TEXT,
    revoked_at         BIGINT,
    -- 'permission_revoked' or 'refresh_refused'
    revoked_reason     TEXT
);

-- OAuth v4 (PKCE) flows started from the connect page: the state and the browser session it is
-- bound to (both as SHA-256 hex), the code verifier, and when the flow expires. A state is
-- deleted when the callback uses it (single use).
CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,
    session_hash  TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);
