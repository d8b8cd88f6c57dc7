//! Agents are people (issue 30): each agent has an account of their own — a name and a
//! password — created by an admin (`zaloflow agents add NAME`, or `POST /admin/agents`), signs
//! in to the board with it and claims, resolves and replies under that name. The admin token
//! stays for admins and automation.
//!
//! - Passwords are hashed with Argon2id (memory-hard; the RustCrypto `argon2` crate's default
//!   parameters, OWASP's first choice) into a PHC string with a random salt of its own; a
//!   password shorter than [`MIN_PASSWORD_CHARS`] is refused.
//! - A session is a random 256-bit token in the agent's cookie; the store keeps only its
//!   SHA-256, with its expiry. Sessions expire, are revoked (`agents revoke`), and stop at once
//!   when their agent is disabled.
//! - Signing in answers the same for an unknown name and a wrong password, and takes as long:
//!   an unknown name is checked against a dummy hash.
//!
//! The HTTP side is in `http::signin` (sign-in page, the agent's role on `/admin`) and
//! `http::admin::agents` (the admin API); the CLI is [`run`].

use std::io::BufRead;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use crate::i18n::{tr, words, Lang};
use crate::store::{Agent, DynStore, SessionAgent, StoreError};

/// The shortest password an agent may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest (hashing stays cheap to ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest name.
pub const MAX_NAME_CHARS: usize = 80;

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent's name must be 1–{MAX_NAME_CHARS} characters, without control characters")]
    BadName,
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the password is too long: use at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("an agent named {0:?} already exists")]
    NameTaken(String),
    #[error("no agent named {0:?}")]
    NotFound(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AgentError {
    /// The message in `lang` (the CLI); `Display` is the English one (the admin API).
    pub fn words(&self, lang: Lang) -> String {
        let (key, args): (&str, Vec<(&str, String)>) = match self {
            AgentError::BadName => ("bad_name", vec![("max", MAX_NAME_CHARS.to_string())]),
            AgentError::ShortPassword => (
                "short_password",
                vec![("n", MIN_PASSWORD_CHARS.to_string())],
            ),
            AgentError::LongPassword => {
                ("long_password", vec![("n", MAX_PASSWORD_BYTES.to_string())])
            }
            AgentError::NameTaken(n) => ("name_taken", vec![("name", format!("{n:?}"))]),
            AgentError::NotFound(n) => ("not_found", vec![("name", format!("{n:?}"))]),
            AgentError::Hash(_) | AgentError::Store(_) => return self.to_string(),
        };
        words(lang, &format!("agents.error.{key}"), &args)
    }
}

/// An agent's name as given: trimmed, 1–80 characters, no control characters.
pub fn check_name(raw: &str) -> Result<String, AgentError> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) {
        return Err(AgentError::BadName);
    }
    Ok(n.to_string())
}

/// A new password: at least [`MIN_PASSWORD_CHARS`] characters.
pub fn check_password(password: &str) -> Result<(), AgentError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AgentError::ShortPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AgentError::LongPassword);
    }
    Ok(())
}

/// The PHC string of `password`: Argon2id, default parameters, a random 16-byte salt.
pub fn hash_password(password: &str) -> Result<String, AgentError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AgentError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AgentError::Hash(e.to_string()))
}

/// Whether `password` is the one of `phc` (the parameters are read from the string).
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches in practice: an unknown name is checked against it, so it
/// takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 32]>())).unwrap_or_default())
}

/// How many Argon2 computations run at once: each takes 19 MiB and tens of milliseconds on
/// purpose, so a burst of sign-ins waits its turn instead of exhausting memory.
const HASHING_AT_ONCE: usize = 4;

/// Runs `f` (a hash or a check) on the blocking pool, at most [`HASHING_AT_ONCE`] at a time.
async fn argon2_turn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AgentError> {
    static TURNS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let _turn = TURNS
        .get_or_init(|| tokio::sync::Semaphore::new(HASHING_AT_ONCE))
        .acquire()
        .await
        .map_err(|e| AgentError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Hash(e.to_string()))
}

/// Hashing off the async workers.
async fn hash_blocking(password: String) -> Result<String, AgentError> {
    argon2_turn(move || hash_password(&password)).await?
}

/// A new session token: 32 random bytes, hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What the store keeps of a session token: its SHA-256, hex.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates an agent with this password.
pub async fn create(
    store: &DynStore,
    name: &str,
    password: &str,
    now: i64,
) -> Result<Agent, AgentError> {
    let name = check_name(name)?;
    check_password(password)?;
    let hash = hash_blocking(password.to_string()).await?;
    store
        .create_agent(&name, &hash, now)
        .await?
        .ok_or(AgentError::NameTaken(name))
}

/// Gives agent `name` a new password and ends their sessions.
pub async fn set_password(
    store: &DynStore,
    name: &str,
    password: &str,
    now: i64,
) -> Result<(), AgentError> {
    check_password(password)?;
    let hash = hash_blocking(password.to_string()).await?;
    if store.set_agent_password(name, &hash, now).await? {
        Ok(())
    } else {
        Err(AgentError::NotFound(name.to_string()))
    }
}

/// Why signing in failed. The page shows the same words for both of the first two.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown name, wrong password or a disabled account: one answer for all.
    Refused,
    Store(StoreError),
}

/// Checks `name` and `password` and starts a session of `hours`: its token (for the cookie,
/// never stored) and the agent.
pub async fn sign_in(
    store: &DynStore,
    name: &str,
    password: &str,
    now: i64,
    hours: u32,
) -> Result<(String, SessionAgent), SignInError> {
    let creds = store
        .agent_credentials(name.trim())
        .await
        .map_err(SignInError::Store)?;
    let (phc, usable) = match &creds {
        Some(c) => (c.password_hash.clone(), c.disabled_at.is_none()),
        None => (dummy_hash().to_string(), false),
    };
    let given = password.to_string();
    let matches = argon2_turn(move || verify_password(&given, &phc))
        .await
        .unwrap_or(false);
    let Some(agent) = creds.filter(|_| matches && usable) else {
        tracing::info!("agent sign-in refused");
        return Err(SignInError::Refused);
    };
    let token = new_token();
    let expires_at = now + i64::from(hours) * 3_600_000;
    store
        .start_session(agent.id, &token_sha256(&token), now, expires_at)
        .await
        .map_err(SignInError::Store)?;
    // Expired sessions go now and then (each sign-in), so the table stays small.
    if let Err(e) = store.purge_sessions(now).await {
        tracing::warn!(error = %e, "could not purge expired agent sessions");
    }
    tracing::info!(agent = %agent.name, "agent signed in");
    Ok((
        token,
        SessionAgent {
            agent_id: agent.id,
            name: agent.name,
            expires_at,
        },
    ))
}

/// `zaloflow agents …`: the admin's commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create an agent; the password is read from standard input (one line).
    Add { name: String },
    /// Every agent: name, state, sessions signed in now.
    List,
    /// Disable an agent: their sessions stop at once and they cannot sign in.
    Disable { name: String },
    /// Enable a disabled agent again.
    Enable { name: String },
    /// End every session of an agent (they sign in again).
    Revoke { name: String },
    /// Give an agent a new password (read from standard input) and end their sessions.
    Password { name: String },
}

/// Runs an `agents` command against the configured database.
pub async fn run(config: &crate::config::Config, command: Command) -> anyhow::Result<()> {
    let lang = config.lang;
    match run_in(config, command, lang).await {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        // What the person typing can mend, in their language.
        Err(e) => match e.downcast_ref::<AgentError>() {
            Some(a) => Err(anyhow::anyhow!("{}", a.words(lang))),
            None => Err(e),
        },
    }
}

/// What `run` prints, in `lang`.
async fn run_in(
    config: &crate::config::Config,
    command: Command,
    lang: Lang,
) -> anyhow::Result<String> {
    let store = crate::wiring::open_store(config).await?;
    let now = crate::clock::system_now();
    let said = |key: &str, name: &str, more: &[(&str, String)]| {
        let mut args = vec![("name", format!("{name:?}"))];
        args.extend(more.iter().cloned());
        words(lang, key, &args) + "\n"
    };
    Ok(match command {
        Command::Add { name } => {
            let password = read_password(&name, lang)?;
            let a = create(&store, &name, &password, now).await?;
            said(
                "agents.cli.created",
                &a.name,
                &[("url", config.board_url())],
            )
        }
        Command::List => list_text(&store.list_agents(now).await?, lang),
        Command::Disable { name } => {
            found(store.disable_agent(&name, now).await?, &name)?;
            said("agents.cli.disabled", &name, &[])
        }
        Command::Enable { name } => {
            found(store.enable_agent(&name, now).await?, &name)?;
            said("agents.cli.enabled", &name, &[])
        }
        Command::Revoke { name } => match store.revoke_agent_sessions(&name).await? {
            Some(n) => said("agents.cli.revoked", &name, &[("n", n.to_string())]),
            None => return Err(AgentError::NotFound(name).into()),
        },
        Command::Password { name } => {
            let password = read_password(&name, lang)?;
            set_password(&store, &name, &password, now).await?;
            said("agents.cli.password_set", &name, &[])
        }
    })
}

fn found(yes: bool, name: &str) -> Result<(), AgentError> {
    if yes {
        Ok(())
    } else {
        Err(AgentError::NotFound(name.to_string()))
    }
}

/// One line of standard input; at a terminal, a prompt on stderr and the typing not echoed.
fn read_password(name: &str, lang: Lang) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty").arg(arg).status();
    };
    if tty {
        let prompt = [
            ("name", name.to_string()),
            ("n", MIN_PASSWORD_CHARS.to_string()),
        ];
        eprint!("{}", words(lang, "agents.cli.prompt", &prompt));
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    check_password(&password)?;
    Ok(password)
}

/// The `agents list` table.
pub fn list_text(agents: &[Agent], lang: Lang) -> String {
    if agents.is_empty() {
        return format!("{}\n", tr(lang, "agents.cli.none"));
    }
    let width = agents
        .iter()
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let state_of = |a: &Agent| {
        tr(
            lang,
            if a.disabled_at.is_some() {
                "agents.cli.off"
            } else {
                "agents.cli.active"
            },
        )
    };
    let col = |k: &str| tr(lang, k).into_owned();
    let (name, state) = (col("agents.cli.col_name"), col("agents.cli.col_state"));
    let width = width.max(name.chars().count());
    let state_width = agents
        .iter()
        .map(|a| state_of(a).chars().count())
        .chain([state.chars().count()])
        .max()
        .unwrap_or(8);
    let mut out = format!(
        "{name:<width$}  {state:<state_width$}  {}\n",
        col("agents.cli.col_sessions")
    );
    for a in agents {
        out.push_str(&format!(
            "{:<width$}  {:<state_width$}  {}\n",
            a.name,
            state_of(a),
            a.sessions
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_a_salt_of_their_own() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m="), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn short_passwords_and_bad_names_are_refused() {
        assert!(matches!(
            check_password("123456789"),
            Err(AgentError::ShortPassword)
        ));
        // Characters, not bytes: ten Vietnamese letters are enough.
        assert!(check_password("mậtkhẩuđủ1").is_ok());
        assert!(check_password(&"x".repeat(2000)).is_err());
        assert!(AgentError::ShortPassword
            .to_string()
            .contains("at least 10"));
        assert_eq!(check_name("  Minh ").unwrap(), "Minh");
        assert!(check_name(" ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, new_token());
        assert_eq!(token_sha256(&t).len(), 64);
        assert_ne!(token_sha256(&t), t);
    }
}
