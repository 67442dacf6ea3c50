//! Both ends of an app managed as code: the interfaces platform clients
//! implement — [`ProviderAdmin`] for the provider end (plan, apply, export,
//! restore; it returns an [`AppPlan`]) and [`ConsumerEnd`] for the consumer
//! that holds the app's credentials (plan or apply its records, the consent
//! link; it returns a [`TargetPlan`]). The front ends and `connapp-clients`
//! work through these; what a platform's API looks like is its client's.

use connapp_core::manifest::Change;
use connapp_core::{App, SecretKind};
use connapp_plugin_api::zeroize::Zeroizing;
use serde::Serialize;
use serde_json::Value;

use connapp_plugin_api::contract::ConsumerRecords;

use crate::Error;
use crate::tokens::{AppCtx, Observer};
use crate::verify::Check;

/// What apply does to an app at its provider (serialised as today's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    /// Create the app.
    Create,
    /// Change its settings.
    Update,
    /// Take over the app an interrupted create made (see [`CreateIntent`]).
    Adopt,
    /// Nothing: it matches the declaration.
    None,
    /// connapp does not manage it at the provider (no `managed_by`).
    Unmanaged,
}

impl PlanAction {
    /// The word in plans and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Create => "create",
            PlanAction::Update => "update",
            PlanAction::Adopt => "adopt",
            PlanAction::None => "none",
            PlanAction::Unmanaged => "unmanaged",
        }
    }
}

impl std::fmt::Display for PlanAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What apply does to one consumer record (serialised as today's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordAction {
    /// Create it.
    Create,
    /// The instance creates it itself (e.g. when a consent completes).
    CreatedByInstance,
    /// Change fields of it.
    Update,
    /// Remove it.
    Delete,
    /// Nothing: it is as declared.
    None,
}

impl RecordAction {
    /// The word in plans and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Create => "create",
            RecordAction::CreatedByInstance => "created-by-instance",
            RecordAction::Update => "update",
            RecordAction::Delete => "delete",
            RecordAction::None => "none",
        }
    }
}

impl std::fmt::Display for RecordAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app's plan.
#[derive(Serialize)]
pub struct AppPlan {
    /// The provider in messages (its platform's display name).
    #[serde(skip)]
    pub provider: String,
    /// The declaration's app name.
    pub app: String,
    /// The provider's app id (none before creation).
    pub app_id: Option<String>,
    /// The management app whose token is used.
    pub managed_by: String,
    /// What apply does to the provider's app.
    pub action: PlanAction,
    /// Every setting that changes.
    pub changes: Vec<Change>,
    /// Scopes the app gains.
    pub scopes_added: Vec<String>,
    /// Scopes the app loses.
    pub scopes_removed: Vec<String>,
    /// The live manifest (empty before creation).
    #[serde(skip)]
    pub live: Value,
    /// The live manifest with the declaration's settings merged in: what apply writes.
    #[serde(skip)]
    pub merged: Value,
    /// Why `apply` would refuse this plan, found while planning (so `plan`
    /// says it before `apply` does); `null` when nothing stands in the way.
    pub blocked: Option<Blocked>,
}

/// A refusal `apply` would make, known at plan time.
#[derive(Clone, Debug, Serialize)]
pub struct Blocked {
    /// What stands in the way.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Blocked {
    /// The refusal as an error (what `apply` reports).
    pub fn error(&self) -> Error {
        Error::failure(self.message.clone()).hint(self.fix.clone())
    }
}

impl AppPlan {
    /// The plan of an app connapp does not manage at `provider` (no `managed_by`).
    pub fn unmanaged(provider: &str, app: &App) -> AppPlan {
        AppPlan {
            provider: provider.to_string(),
            app: app.name.clone(),
            app_id: app.app_id.clone(),
            managed_by: String::new(),
            action: PlanAction::Unmanaged,
            changes: Vec::new(),
            scopes_added: Vec::new(),
            scopes_removed: Vec::new(),
            live: Value::Null,
            merged: Value::Null,
            blocked: None,
        }
    }

    /// Anything to do at the provider.
    pub fn pending(&self) -> bool {
        !matches!(self.action, PlanAction::None | PlanAction::Unmanaged)
    }
}

/// What a platform client does for an app managed through the provider's
/// API (e.g. Zoom's Marketplace, through a management app).
pub trait ProviderAdmin: Send + Sync {
    /// The provider in messages.
    fn provider(&self) -> &'static str;
    /// What applying `desired` (the platform's manifest settings for `app`)
    /// would change at the provider.
    fn plan(&self, app: &App, desired: &Value) -> Result<AppPlan, Error>;
    /// Creates or updates the app as `plan` says and confirms what was
    /// written; a created app's id lands in `plan.app_id`.
    fn apply(&self, app: &App, plan: &mut AppPlan, obs: &dyn Observer) -> Result<(), Error>;
    /// The provider's settings of the app `app_id` now.
    fn export(&self, app: &App, app_id: &str) -> Result<Value, Error>;
    /// Writes `saved` (settings exported earlier) back.
    fn restore(&self, app: &App, app_id: &str, saved: &Value) -> Result<(), Error>;
    /// What a person must do after the app gained scopes (consent again), if anything.
    fn reconsent_note(&self, app: &App, added: &[String]) -> Option<String>;
    /// Starts a rotation of the app's Client Secret whose old secret stays
    /// valid until `revoke_old_at` (unix seconds). An error means the
    /// provider refused (nothing was issued) or could not be reached.
    fn start_secret_rotation(&self, app: &App, revoke_old_at: u64) -> Result<Started, Error> {
        let _ = revoke_old_at;
        Err(Error::invalid(format!(
            "{}: connapp cannot rotate this provider's Client Secret through its API",
            app.name
        )))
    }
    /// Moves the end of the rotation's overlap: `None` revokes the old
    /// secret now, `Some(t)` at `t`.
    fn revoke_old_secret(&self, app: &App, at: Option<u64>) -> Result<Revoked, Error> {
        let _ = at;
        Err(Error::invalid(format!(
            "{}: connapp cannot revoke this provider's old Client Secret through its API",
            app.name
        )))
    }
}

/// What the provider said to the start of a Client Secret rotation.
pub enum Started {
    /// It issued this new secret.
    Issued(Zeroizing<String>),
    /// It started the rotation, but its answer held no secret.
    NoSecretInAnswer,
    /// A rotation is in progress already (one whose answer was lost, or one
    /// a person started): the provider issued nothing now.
    AlreadyInProgress(String),
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Started::Issued(_) => f.write_str("Issued(<redacted>)"),
            Started::NoSecretInAnswer => f.write_str("NoSecretInAnswer"),
            Started::AlreadyInProgress(m) => write!(f, "AlreadyInProgress({m:?})"),
        }
    }
}

/// What the provider said to a change of the old secret's revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// Done as asked.
    Done,
    /// No rotation is in progress any more: the old secret is already revoked.
    AlreadyRevoked,
}

/// One record's fate.
#[derive(Debug, Serialize)]
pub struct Item {
    /// The platform's key for it.
    pub key: String,
    /// The table.
    pub table: String,
    /// For humans.
    pub label: String,
    /// What apply does to the record.
    pub action: RecordAction,
    /// The record, when it exists.
    pub sys_id: Option<String>,
    /// `(field, before, after)` for updates and creations.
    pub changes: Vec<(String, String, String)>,
}

/// The consumer half of a plan.
#[derive(Debug, Serialize)]
pub struct TargetPlan {
    /// The consumer in messages (its platform's name, e.g. `ServiceNow`).
    #[serde(skip)]
    pub consumer: &'static str,
    /// The instance.
    pub instance: String,
    /// Every record and what happens to it.
    pub items: Vec<Item>,
    /// Anything to do.
    pub pending: bool,
}

/// What `run` does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Look only (plan, verify).
    Plan,
    /// Create, update and prune (apply).
    Apply,
    /// Apply, and write the write-only fields of existing records again
    /// (after a Client Secret rotation at the provider).
    ApplyWithSecrets,
}

/// What a platform client does for the consumer that holds an app's
/// credentials (e.g. a ServiceNow instance's record chain).
pub trait ConsumerEnd: Send + Sync {
    /// Plans (`Mode::Plan`) or applies the consumer's records.
    fn run(&mut self, mode: Mode) -> Result<TargetPlan, Error>;
    /// The link a person opens so the consumer consents itself at the
    /// provider; `None` when it holds a live grant already or consents otherwise.
    fn consent_link(&self) -> Result<Option<String>, Error>;
    /// What a person must do with that link.
    fn consent_note(&self, link: &str) -> String;
    /// Writes `value` into every write-only field that holds the app's
    /// secret of `kind` (a rotation's set step), each in its own request;
    /// returns the fields written (`table.field`). Reads the records first.
    fn set_secret(&mut self, kind: SecretKind, value: &[u8]) -> Result<Vec<String>, Error>;
    /// The consumer's own record of when it last obtained tokens with the
    /// app's credentials (its consent or its last refresh, on its clock);
    /// `None` when it holds none.
    fn last_exchange(&self) -> Result<Option<u64>, Error>;
}

/// `verify`'s checks of the consumer end of an app: its records present and
/// linked, the redirect URL it sends against the ones the provider has
/// registered, its own grant; and a row saying why when it cannot be reached.
pub trait ConsumerChecks: Sync {
    /// The target kind these checks are for (`kind = "..."`).
    fn kind(&self) -> &'static str;
    /// Appends the rows for `c`'s app; `desired` gives what the consumer
    /// platform wants there, `registered` the provider's redirect URLs.
    fn checks(
        &self,
        c: &AppCtx<'_>,
        desired: &mut dyn FnMut() -> Result<ConsumerRecords, Error>,
        registered: &[String],
        checks: &mut Vec<Check>,
    ) -> Result<(), Error>;
    /// What the consumer holds of its own grant (for `status`): read from
    /// the instance and its log of using it, never guessed;
    /// [`GrantHeld::Unknown`] says why not.
    fn grant(&self, c: &AppCtx<'_>, desired: &mut dyn FnMut() -> Result<ConsumerRecords, Error>) -> ConsumerGrant;
}

/// A consumer's own grant as `status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGrant {
    /// The consumer in messages (`ServiceNow`).
    pub consumer: String,
    /// What it holds.
    pub held: GrantHeld,
    /// What a person does when it is not usable (e.g. the consent link to open).
    pub fix: Option<String>,
}

/// What a consumer holds of its grant, judged by its records and by its
/// own log of using it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantHeld {
    /// A refresh token valid until `until` (unix seconds) with every declared
    /// scope, and the consumer's newest calls with it succeeded.
    Valid {
        /// When it expires.
        until: u64,
    },
    /// A refresh token valid until `until`, but its use proves nothing yet
    /// (no calls, or only rate limits, outages or old ones): `why`.
    Unproven {
        /// When it expires.
        until: u64,
        /// What the consumer's log shows.
        why: String,
    },
    /// The provider refused the consumer's calls with it (its own log says so).
    Refused(String),
    /// A valid refresh token whose grant lacks scopes the app has now.
    LacksScopes {
        /// When it expires.
        until: u64,
        /// The declared scopes it lacks.
        missing: Vec<String>,
    },
    /// Its refresh token expired at `at`: it gets no data until a consent.
    Expired {
        /// When it expired.
        at: u64,
    },
    /// No token: nobody consented yet.
    Nothing,
    /// connapp could not look (no instance credentials, unreachable, refused).
    Unknown(String),
}

impl GrantHeld {
    /// The word `status` prints and `--json` carries.
    pub fn word(&self) -> &'static str {
        match self {
            GrantHeld::Valid { .. } => "ok",
            GrantHeld::Unproven { .. } => "unproven",
            GrantHeld::Refused(_) => "refused",
            GrantHeld::LacksScopes { .. } => "lacks-scopes",
            GrantHeld::Expired { .. } => "expired",
            GrantHeld::Nothing => "none",
            GrantHeld::Unknown(_) => "unknown",
        }
    }

    /// Whether the consumer can use its grant (as far as its records say).
    pub fn usable(&self) -> bool {
        matches!(self, GrantHeld::Valid { .. })
    }

    /// Whether connapp could judge it (an unknown or unproven grant counts
    /// neither way).
    pub fn known(&self) -> bool {
        !matches!(self, GrantHeld::Unknown(_) | GrantHeld::Unproven { .. })
    }
}

/// The store key of an app's create intent.
pub fn intent_key(app: &str) -> String {
    format!("apps/{app}/create-intent")
}

/// What a run records in the shared store before it asks the provider to
/// create an app, so a run that dies between the provider's answer and the
/// store write leaves a trace: the next run, on any host, finds the app the
/// provider made (named `display_name`, not among `existing`) and adopts it
/// instead of creating a second one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CreateIntent {
    /// The name the app is created with.
    pub display_name: String,
    /// The provider's ids of apps already called that before the create.
    pub existing: Vec<String>,
    /// The host that recorded it.
    pub host: String,
    /// When, in seconds since the epoch (the owner's clock).
    pub at: u64,
}

/// The create intents kept in a store.
pub struct Intents<'s> {
    store: &'s connapp_plugin_api::StoreHandle,
}

impl<'s> Intents<'s> {
    /// The intents kept in `store`.
    pub fn new(store: &'s connapp_plugin_api::StoreHandle) -> Self {
        Intents { store }
    }

    /// `app`'s intent, if a create was begun and never finished.
    pub fn get(&self, app: &str) -> Result<Option<CreateIntent>, Error> {
        let Some(r) = self.store.get(&intent_key(app)).map_err(|e| intent_err(app, e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&r.value).map(Some).map_err(|e| {
            Error::failure(format!("{app}: the create intent in the store cannot be read: {e}")).hint(format!(
                "look for an app called like [apps.{app}] display_name at the provider; set app_id to it, or remove the key {} with the store's own tools",
                intent_key(app)
            ))
        })
    }

    /// Records `intent` before the create.
    pub fn put(&self, app: &str, intent: &CreateIntent) -> Result<(), Error> {
        let bytes = serde_json::to_vec(intent).unwrap_or_default();
        self.store
            .put(&intent_key(app), &bytes, connapp_plugin_api::Expected::Any)
            .map(|_| ())
            .map_err(|e| intent_err(app, e))
    }

    /// Removes `app`'s intent once the app's id and credentials are stored.
    pub fn clear(&self, app: &str) -> Result<(), Error> {
        self.store
            .delete(&intent_key(app), connapp_plugin_api::Expected::Any)
            .map(|_| ())
            .map_err(|e| intent_err(app, e))
    }
}

fn intent_err(app: &str, e: connapp_plugin_api::StoreError) -> Error {
    Error::failure(format!("{app}: the store (create intent): {e}"))
}
