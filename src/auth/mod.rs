//! Accounts and sessions: registering, logging in and out, and finding who a cookie belongs to.
//!
//! Sessions live in the store (so any node can serve any user); the cookie holds a random token
//! and the store only its SHA-256. Each session carries its own CSRF token.

mod password;
mod session_cache;
mod token;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{DisplayName, Password, Username, ValidationError};
use crate::store::{NewSession, NewUser, Session, Store, StoreError, User};

use session_cache::SessionCache;

pub use password::{hash_password, verify_password};
pub use token::{hash_token, random_token};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("username or password is incorrect")]
    WrongCredentials,
    #[error("registration is closed on this server")]
    RegistrationClosed,
    #[error("username {0:?} is already taken")]
    UsernameTaken(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("password hashing failed")]
    Hashing(#[from] password::HashError),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// A session just opened: the raw cookie value (shown once) and its CSRF token.
#[derive(Debug)]
pub struct NewLogin {
    pub user: User,
    pub session_token: String,
    pub csrf_token: String,
}

/// The accounts service.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    session_ttl: Duration,
    open_registration: bool,
    sessions: Arc<SessionCache>,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        session_ttl: Duration,
        open_registration: bool,
    ) -> Self {
        Self {
            store,
            clock,
            session_ttl,
            open_registration,
            sessions: Arc::default(),
        }
    }

    /// Creates an account (open registration only) and logs it in.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<NewLogin, AuthError> {
        if !self.open_registration {
            return Err(AuthError::RegistrationClosed);
        }
        let user = self.create_user(username, password, display_name).await?;
        self.open_session(user).await
    }

    /// Creates an account regardless of the registration setting (the CLI's `user create`).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<User, AuthError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let display_name = match display_name {
            Some(name) => DisplayName::parse(name)?,
            None => DisplayName::from_username(&username),
        };
        let password_hash = hash_password(password).await?;
        self.store
            .create_user(NewUser {
                username: username.as_str(),
                display_name: display_name.as_str(),
                password_hash: &password_hash,
                now: self.clock.now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::UsernameTaken => AuthError::UsernameTaken(username.into_string()),
                other => other.into(),
            })
    }

    pub async fn set_password(&self, user: &User, password: &str) -> Result<(), AuthError> {
        let hash = hash_password(Password::parse(password)?).await?;
        Ok(self.store.set_password(user.id, &hash).await?)
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<NewLogin, AuthError> {
        // A malformed name cannot exist, but it is answered like a wrong password so responses
        // do not tell which usernames are valid.
        let credentials = match Username::parse(username) {
            Ok(name) => self.store.credentials(name.as_str()).await?,
            Err(_) => None,
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        // Verify even when the user is unknown, so timing does not reveal which names exist.
        let valid = verify_password(password.to_owned(), hash).await;
        match credentials {
            Some(credentials) if valid => self.open_session(credentials.user).await,
            _ => Err(AuthError::WrongCredentials),
        }
    }

    async fn open_session(&self, user: User) -> Result<NewLogin, AuthError> {
        let session_token = random_token();
        let csrf_token = random_token();
        let now = self.clock.now();
        self.store
            .create_session(NewSession {
                token_hash: &hash_token(&session_token),
                user: user.id,
                csrf_token: &csrf_token,
                now,
                expires_at: now.plus(self.session_ttl),
            })
            .await?;
        Ok(NewLogin {
            user,
            session_token,
            csrf_token,
        })
    }

    /// The session a cookie value opens, if it is live.
    pub async fn session(&self, session_token: &str) -> Result<Option<Session>, StoreError> {
        let token_hash = hash_token(session_token);
        let now = self.clock.now();
        if let Some(session) = self.sessions.get(&token_hash, now) {
            return Ok(Some(session));
        }
        let session = self.store.session(&token_hash, now).await?;
        if let Some(session) = &session {
            self.sessions.remember(token_hash, session.clone(), now);
        }
        Ok(session)
    }

    pub async fn logout(&self, session_token: &str) -> Result<(), StoreError> {
        let token_hash = hash_token(session_token);
        self.sessions.forget(&token_hash);
        self.store.delete_session(&token_hash).await
    }
}
