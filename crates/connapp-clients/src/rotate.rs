//! `rotate client-secret` composed: the four steps of a Client Secret
//! rotation across both ends of an app (`docs/operations.md` §4, after AWS
//! Secrets Manager's rotation):
//!
//! 1. **create** — the provider issues a new secret while the old one keeps
//!    working until the end of the overlap (Zoom's `rotate_client_secret`,
//!    `action: new`); the answer is sealed into a journal before it is
//!    stored as pending beside the current one. Without a management app a
//!    person does this step from printed instructions and hands connapp the
//!    new secret.
//! 2. **set** — the consumer gets the new secret (ServiceNow's write-only
//!    `client_secret`, in a request of its own).
//! 3. **test** — connapp renews its own token with the new secret, and the
//!    consumer's own record shows a token exchange after the set step.
//! 4. **finish** — pending becomes current; the old secret is revoked now
//!    when the consumer proved the new one, else left to the overlap's end.
//!
//! Every step is recorded in the store ([`connapp_engine::rotation`]) before
//! the next begins, so a run killed anywhere is continued by `--resume` or
//! undone by `--abort`, and a second rotation refuses while one is open.

use connapp_core::{App, SecretKind};
use connapp_engine::Error;
use connapp_engine::manage::{ConsumerEnd, ProviderAdmin, Revoked, Started};
use connapp_engine::rotation::{self, Proof, Rotation, Rotations, Step, Tested, fault};
use connapp_engine::tokens::{AppCtx, Event};
use connapp_plugin_api::zeroize::Zeroizing;

use crate::apply::{Session, consumer_end, provider_admin};

/// The longest overlap Zoom allows between the old and the new secret.
pub const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

/// What the run is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a rotation and take it as far as it goes.
    Start,
    /// Continue the open rotation.
    Resume,
    /// Undo the open rotation on connapp's side.
    Abort,
}

/// How the run goes.
pub struct Options {
    /// How long the old secret keeps working after the create step.
    pub overlap_secs: u64,
    /// How long the test step waits for the consumer's own token exchange.
    pub wait_secs: u64,
    /// A new secret a person copied from the provider (a rotation without a
    /// management app, or one whose answer never reached connapp).
    pub new_secret: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("overlap_secs", &self.overlap_secs)
            .field("wait_secs", &self.wait_secs)
            .field("new_secret", &self.new_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where the run left the rotation.
#[derive(Debug)]
pub struct Outcome {
    /// The rotation record as stored now.
    pub rotation: Rotation,
    /// What a person must do at the provider before `--resume` can go on
    /// (a rotation without a management app); empty otherwise.
    pub manual_steps: Vec<String>,
}

/// The steps a person takes in the provider's console when connapp cannot
/// rotate there itself.
fn manual_steps(app: &App, revoke_at: u64) -> Vec<String> {
    let when = iso(revoke_at);
    match app.platform.as_str() {
        connapp_zoom::PLATFORM => connapp_zoom::guide::rotation_steps(app, &when),
        _ => vec![
            format!(
                "In the provider's console, create a new Client Secret for {} and keep the old one working until {when}.",
                app.display_name
            ),
            format!(
                "Hand it to connapp: `connapp rotate client-secret {} --resume --new-secret-stdin < FILE` (or run it with --resume on a terminal to be asked).",
                app.name
            ),
        ],
    }
}

/// A unix time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// One app's rotation, with both ends loaded.
struct Run<'a, 'r> {
    s: Session<'a, 'r>,
    app: &'a App,
    c: AppCtx<'r>,
    provider: Option<Box<dyn ProviderAdmin + 'r>>,
    consumer: Option<Box<dyn ConsumerEnd + 'r>>,
    rots: Rotations<'a>,
    rot: Rotation,
    version: Option<u64>,
}

/// Rotates `app`'s Client Secret as `action` says; see the module doc.
pub fn rotate(s: &Session<'_, '_>, app: &App, action: Action, opts: &Options) -> Result<Outcome, Error> {
    let c = AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?;
    // Both ends first: a rotation is recorded only once both can be reached.
    let provider = match app.managed_by {
        Some(_) => Some(provider_admin(s.reg, s.decl, &c, s.obs)?),
        None => None,
    };
    let consumer = match &app.target {
        Some(_) => consumer_end(s.reg, AppCtx::load(s.reg, s.decl, Some(&app.name), s.shared)?)?,
        None => None,
    };
    if app.target.is_some() && consumer.is_none() {
        return Err(Error::failure(format!(
            "{}: connapp cannot reach {} (no instance credentials are stored), so it cannot hand it the new secret",
            app.name,
            app.target.as_ref().map_or("the consumer", |t| t.display.as_str())
        ))
        .hint(connapp_servicenow::consumer::credentials_hint(app)));
    }
    let rots = Rotations::new(&s.shared.store);
    let existing = rots.get(&app.name)?;
    let now = s.shared.now();
    let open = existing.as_ref().filter(|(r, _)| r.step.open());
    let (rot, version) = match (action, open, existing.clone()) {
        (Action::Start, Some((r, _)), _) => {
            return Err(Error::failure(format!(
                "{}: a rotation of its Client Secret is in progress since {} (step {}, by {})",
                app.name,
                iso(r.started_at),
                r.step.as_str(),
                r.by
            ))
            .hint(format!(
                "continue it with `connapp rotate client-secret {0} --resume`, or undo it with `connapp rotate client-secret {0} --abort`",
                app.name
            )));
        }
        (Action::Start, None, prev) => {
            if let Some((r, _)) = &prev
                && r.step == Step::Aborted
                && now < r.revoke_old_at
                && rots.pending(&app.name)?.is_some()
            {
                return Err(Error::failure(format!(
                    "{}: the rotation aborted on {} is still open at the provider until {} (it cannot cancel one), with the secret it issued kept as pending",
                    app.name,
                    iso(r.history.last().map_or(r.started_at, |h| h.at)),
                    iso(r.revoke_old_at)
                ))
                .hint(format!(
                    "finish that rotation with `connapp rotate client-secret {} --resume`; a new one can start after {}",
                    app.name,
                    iso(r.revoke_old_at)
                )));
            }
            if opts.overlap_secs == 0 || opts.overlap_secs > MAX_OVERLAP_SECS {
                return Err(Error::invalid(format!(
                    "--overlap must be more than 0 and at most 30 days; it is {} s",
                    opts.overlap_secs
                ))
                .hint("give a duration such as 1h, 24h or 7d"));
            }
            let old = c
                .stored(SecretKind::ClientSecret)?
                .ok_or_else(|| connapp_engine::secrets::missing(&app.name, SecretKind::ClientSecret, None))?;
            let _ = rots.remove_pending(&app.name);
            let rot = Rotation::new(&app.name, now, now + opts.overlap_secs, &old, app.managed_by.is_none());
            let v = rots.put(&rot, prev.map(|(_, v)| v))?;
            (rot, Some(v))
        }
        (Action::Resume, _, Some((r, v))) if r.step.open() || r.step == Step::Aborted => (r, Some(v)),
        (Action::Abort, Some((r, v)), _) => (r.clone(), Some(*v)),
        (_, _, _) => {
            return Err(
                Error::failure(format!("{}: no rotation of its Client Secret is in progress", app.name))
                    .hint(format!("start one with `connapp rotate client-secret {}`", app.name)),
            );
        }
    };
    let run = Run {
        s: *s,
        app,
        c,
        provider,
        consumer,
        rots,
        rot,
        version,
    };
    match action {
        Action::Abort => run.abort(),
        _ => run.advance(opts),
    }
}

impl Run<'_, '_> {
    fn now(&self) -> u64 {
        self.s.shared.now()
    }

    fn save(&mut self) -> Result<(), Error> {
        self.version = Some(self.rots.put(&self.rot, self.version)?);
        Ok(())
    }

    fn reach(&mut self, step: Step, note: impl Into<String>) -> Result<(), Error> {
        let note = note.into();
        let now = self.now();
        self.rot.reach(step, now, note.clone());
        self.save()?;
        self.s
            .obs
            .event(Event::Done(&format!("{}: {}: {note}", self.app.name, step.as_str())));
        Ok(())
    }

    fn step(&self, what: &str) {
        self.s.obs.event(Event::Step {
            app: &self.app.name,
            what,
        });
    }

    fn outcome(self, manual_steps: Vec<String>) -> Outcome {
        Outcome {
            rotation: self.rot,
            manual_steps,
        }
    }

    fn provider_name(&self) -> String {
        self.provider
            .as_ref()
            .map_or_else(|| self.c.display().to_string(), |p| p.provider().to_string())
    }

    fn consumer_name(&self) -> String {
        self.app
            .target
            .as_ref()
            .map_or_else(|| "the consumer".into(), |t| t.display.clone())
    }

    /// Takes the rotation from where it stands to finished, or to the first
    /// step that needs a person.
    fn advance(mut self, opts: &Options) -> Result<Outcome, Error> {
        if self.rot.step == Step::Aborted {
            // A resumed abort: the provider's overlap is still open with the
            // secret it issued; go on from the set step.
            if self.rots.pending(&self.app.name)?.is_none() {
                return Err(Error::failure(format!(
                    "{}: the aborted rotation kept no pending secret to resume with",
                    self.app.name
                ))
                .hint(format!(
                    "start a new one with `connapp rotate client-secret {}`",
                    self.app.name
                )));
            }
            self.rot.set_at = None;
            self.reach(
                Step::Created,
                "resumed after an abort; the pending secret is still the one issued",
            )?;
        }
        loop {
            match self.rot.step {
                Step::Creating => {
                    if let Some(steps) = self.create(opts)? {
                        return Ok(self.outcome(steps));
                    }
                }
                Step::Created => self.set()?,
                Step::Set => self.test(opts)?,
                Step::Tested | Step::Finishing => self.finish()?,
                Step::Finished | Step::Aborted => return Ok(self.outcome(Vec::new())),
            }
        }
    }

    /// The new secret from wherever it already is: the journal of a run that
    /// died before storing it, or the store.
    fn new_secret_kept(&self) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        if let Some(s) = rotation::journaled(&self.c)? {
            return Ok(Some(s));
        }
        self.rots.pending(&self.app.name)
    }

    /// Step 1. `Some(steps)`: a person must act at the provider first.
    fn create(&mut self, opts: &Options) -> Result<Option<Vec<String>>, Error> {
        let name = self.app.name.clone();
        let secret = match (self.new_secret_kept()?, &opts.new_secret) {
            (Some(s), _) => s,
            (None, Some(given)) => {
                SecretKind::ClientSecret.check_value(given).map_err(|why| {
                    Error::invalid(format!("{name}: the new Client Secret given: {why}"))
                        .hint("copy the new Client Secret from the app's credentials page again")
                })?;
                if self.rot.old_fingerprint == rotation::fingerprint(given) {
                    return Err(Error::invalid(format!(
                        "{name}: the secret given is the current Client Secret, not a new one"
                    ))
                    .hint("copy the new Client Secret the provider shows after the rotation"));
                }
                given.clone()
            }
            (None, None) if self.rot.manual => {
                return Ok(Some(manual_steps(self.app, self.rot.revoke_old_at)));
            }
            (None, None) => {
                let Some(p) = &self.provider else {
                    return Ok(Some(manual_steps(self.app, self.rot.revoke_old_at)));
                };
                self.step(&format!("asking {} for a new Client Secret", p.provider()));
                let issued = match p.start_secret_rotation(self.app, self.rot.revoke_old_at) {
                    Ok(Started::Issued(s)) => s,
                    Ok(Started::NoSecretInAnswer) => {
                        return Err(Error::failure(format!(
                            "{name}: {} started the rotation but its answer held no new secret",
                            p.provider()
                        ))
                        .hint(format!(
                            "copy the new Client Secret from the app's App Credentials page and run `connapp rotate client-secret {name} --resume --new-secret-stdin < FILE`"
                        )));
                    }
                    Ok(Started::AlreadyInProgress(said)) => {
                        return Err(Error::failure(format!(
                            "{name}: {} has a rotation of this app's Client Secret in progress already ({said}); its new secret never reached connapp (an answer lost to a crash, or a rotation started by hand)",
                            p.provider()
                        ))
                        .hint(format!(
                            "copy the new Client Secret from the app's App Credentials page and run `connapp rotate client-secret {name} --resume --new-secret-stdin < FILE`; the old one works until {}",
                            iso(self.rot.revoke_old_at)
                        )));
                    }
                    // Refused (rate limit, scope): nothing was issued, so the
                    // same command may simply run again.
                    Err(e) if e.kind != connapp_engine::ErrorKind::Unreachable => {
                        let why = e.message.clone();
                        self.rot
                            .reach(Step::Aborted, self.now(), format!("the provider refused: {why}"));
                        self.save()?;
                        return Err(e);
                    }
                    Err(e) => {
                        return Err(e.hint(format!(
                            "the provider may or may not have started the rotation: run `connapp rotate client-secret {name} --resume`"
                        )));
                    }
                };
                fault("rotate-after-create-answer");
                let bytes = Zeroizing::new(issued.as_bytes().to_vec());
                rotation::journal(&self.c, &bytes)?;
                fault("rotate-after-journal");
                bytes
            }
        };
        self.rots.put_pending(&name, &secret)?;
        rotation::forget_journal(&self.c);
        self.rot.new_fingerprint = Some(rotation::fingerprint(&secret));
        let note = format!(
            "{} issued a new Client Secret ({}), stored as pending; the old one ({}) keeps working until {}",
            self.provider_name(),
            self.rot.new_fingerprint.clone().unwrap_or_default(),
            self.rot.old_fingerprint,
            iso(self.rot.revoke_old_at)
        );
        self.reach(Step::Created, note)?;
        fault("rotate-after-created");
        Ok(None)
    }

    fn pending(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.rots.pending(&self.app.name)?.ok_or_else(|| {
            Error::failure(format!(
                "{}: the pending Client Secret of the rotation is missing from the store",
                self.app.name
            ))
            .hint(format!(
                "undo the rotation with `connapp rotate client-secret {} --abort`",
                self.app.name
            ))
        })
    }

    /// Step 2.
    fn set(&mut self) -> Result<(), Error> {
        let secret = self.pending()?;
        let cname = self.consumer_name();
        let note = match self.consumer.as_mut() {
            Some(end) => {
                self.s.obs.event(Event::Step {
                    app: &self.app.name,
                    what: &format!("handing {cname} the new Client Secret"),
                });
                let fields = end.set_secret(SecretKind::ClientSecret, &secret)?;
                self.rot.consumer_exchange_at = end.last_exchange()?;
                format!("{cname} holds the new secret ({})", fields.join(", "))
            }
            None => "no consumer holds this app's Client Secret".to_string(),
        };
        self.rot.set_at = Some(self.now());
        self.reach(Step::Set, note)?;
        fault("rotate-after-set");
        Ok(())
    }

    /// Step 3: connapp's own token with the new secret, and the consumer's
    /// own record of a token exchange since the set step.
    fn test(&mut self, opts: &Options) -> Result<(), Error> {
        let name = self.app.name.clone();
        let secret = self.pending()?;
        let own = AppCtx::load(self.s.reg, self.s.decl, Some(&name), self.s.shared)?;
        let provider =
            if own.stored_record()?.is_some() || own.app.oauth.grant != connapp_core::GrantKind::AuthorizationCode {
                self.step("renewing connapp's own token with the new secret");
                match own.with_client_secret(secret).renew(self.s.obs) {
                    Ok(_) => Proof::Ok(format!(
                        "{} issued connapp a token for the new secret",
                        self.provider_name()
                    )),
                    // connapp's own grant is gone: that says nothing of the secret.
                    Err(e) if e.kind == connapp_engine::ErrorKind::Reauth => Proof::Unproven(format!(
                        "connapp's own grant for {name} is gone ({}), so its token could not test the new secret",
                        e.message
                    )),
                    // Not reached: try again later, from this step.
                    Err(e) if e.kind == connapp_engine::ErrorKind::Unreachable => return Err(e),
                    Err(e) => Proof::Failed(e.message),
                }
            } else {
                Proof::Unproven(format!(
                    "connapp holds no grant of its own for {name} (`connapp login {name}` gives it one)"
                ))
            };
        if let Proof::Failed(why) = &provider {
            self.rot.tested = Some(Tested {
                provider: provider.clone(),
                consumer: Proof::Unproven("not looked at: the provider refused the new secret".into()),
            });
            self.save()?;
            return Err(Error::failure(format!("{name}: the new Client Secret does not work: {why}")).hint(format!(
                "the old secret still works everywhere until {}: undo with `connapp rotate client-secret {name} --abort`",
                iso(self.rot.revoke_old_at)
            )));
        }
        let consumer = self.consumer_proof(opts.wait_secs)?;
        let proven = provider.ok() || consumer.ok();
        self.rot.tested = Some(Tested {
            provider: provider.clone(),
            consumer: consumer.clone(),
        });
        if !proven {
            self.save()?;
            return Err(Error::failure(format!(
                "{name}: nothing has exercised the new Client Secret yet: {}; {}",
                provider.detail(),
                consumer.detail()
            ))
            .hint(format!(
                "give connapp a grant with `connapp login {name}`, or let {} refresh (it does when its access token nears expiry), then run `connapp rotate client-secret {name} --resume --wait 1h`; both secrets work until {}",
                self.consumer_name(),
                iso(self.rot.revoke_old_at)
            )));
        }
        let note = format!(
            "connapp's token: {}; {}: {}",
            provider.word(),
            self.consumer_name(),
            consumer.word()
        );
        self.reach(Step::Tested, note)?;
        fault("rotate-after-test");
        Ok(())
    }

    fn consumer_proof(&self, wait_secs: u64) -> Result<Proof, Error> {
        let cname = self.consumer_name();
        let Some(end) = &self.consumer else {
            return Ok(Proof::NotApplicable(
                "no consumer holds this app's Client Secret".into(),
            ));
        };
        let Some(mark) = self.rot.consumer_exchange_at else {
            return Ok(Proof::Unproven(format!(
                "{cname} held no grant when the new secret was set, so it exchanged nothing with it"
            )));
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_secs);
        loop {
            if let Some(t) = end.last_exchange()?
                && t > mark
            {
                return Ok(Proof::Ok(format!(
                    "{cname} obtained new tokens with it at {} (its own record)",
                    iso(t)
                )));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(Proof::Unproven(format!(
                    "{cname} has not exchanged a token since the new secret was set (it refreshes when its access token nears expiry)"
                )));
            }
            self.step(&format!("waiting for {cname}'s next token refresh"));
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Step 4: pending becomes current; the old secret is revoked now when
    /// the consumer proved the new one (or there is none), else at the end
    /// of the overlap.
    fn finish(&mut self) -> Result<(), Error> {
        let name = self.app.name.clone();
        if self.rot.step == Step::Tested {
            self.reach(Step::Finishing, "the new secret becomes current")?;
        }
        if let Some(secret) = self.rots.pending(&name)? {
            self.rots.make_current(&name, &secret, self.now())?;
            // connapp's memory of the old credentials ends here.
            self.s.shared.tokens.forget(&name);
        }
        fault("rotate-after-current");
        let consumer_ok = self
            .rot
            .tested
            .as_ref()
            .is_some_and(|t| matches!(t.consumer, Proof::Ok(_) | Proof::NotApplicable(_)));
        let revoked = match (&self.provider, consumer_ok) {
            (Some(p), true) => {
                self.step(&format!("revoking the old Client Secret at {}", p.provider()));
                match p.revoke_old_secret(self.app, None)? {
                    Revoked::Done => format!("revoked at {} now", p.provider()),
                    Revoked::AlreadyRevoked => format!("already revoked at {}", p.provider()),
                }
            }
            (Some(p), false) => format!(
                "left to {}: it stops working at {} (the consumer has not proven the new secret yet)",
                p.provider(),
                iso(self.rot.revoke_old_at)
            ),
            (None, _) => format!(
                "revoke it in the provider's console, or it stops working at {}",
                iso(self.rot.revoke_old_at)
            ),
        };
        self.rot.old_revoked = Some(revoked.clone());
        self.rots.remove_pending(&name)?;
        self.reach(
            Step::Finished,
            format!(
                "the new secret ({}) is current; the old one ({}): {revoked}",
                self.rot.new_fingerprint.clone().unwrap_or_default(),
                self.rot.old_fingerprint
            ),
        )?;
        Ok(())
    }

    /// Undoes the open rotation on connapp's side: the consumer gets the old
    /// secret back, the store keeps it current. A provider cannot cancel a
    /// rotation, so its overlap is moved to the latest it allows and the
    /// issued secret stays pending for `--resume`.
    fn abort(mut self) -> Result<Outcome, Error> {
        let name = self.app.name.clone();
        match self.rot.step {
            Step::Finishing | Step::Finished => {
                return Err(Error::failure(format!(
                    "{name}: the rotation is past its test step: the new secret is current"
                ))
                .hint(format!(
                    "complete it with `connapp rotate client-secret {name} --resume`"
                )));
            }
            Step::Aborted => return Ok(self.outcome(Vec::new())),
            _ => {}
        }
        // A secret issued but not stored yet is kept, so the overlap can still be finished.
        if let Some(j) = rotation::journaled(&self.c)? {
            self.rots.put_pending(&name, &j)?;
            rotation::forget_journal(&self.c);
            self.rot.new_fingerprint = Some(rotation::fingerprint(&j));
        }
        let issued = self.rots.pending(&name)?.is_some();
        if self.rot.set_at.is_some() {
            let old = self
                .c
                .stored(SecretKind::ClientSecret)?
                .ok_or_else(|| connapp_engine::secrets::missing(&name, SecretKind::ClientSecret, None))?;
            let cname = self.consumer_name();
            if let Some(end) = self.consumer.as_mut() {
                self.s.obs.event(Event::Step {
                    app: &name,
                    what: &format!("handing {cname} the old Client Secret again"),
                });
                end.set_secret(SecretKind::ClientSecret, &old)?;
            }
            self.rot.set_at = None;
        }
        let mut note = format!(
            "the old secret ({}) is current everywhere again",
            self.rot.old_fingerprint
        );
        if !issued && self.rot.step == Step::Creating && !self.rot.manual {
            note.push_str(&format!(
                "; if {} started the rotation before the run that asked for it ended, its old secret stops working at {} and the next rotation asks for the new secret from the app's credentials page",
                self.provider_name(),
                iso(self.rot.revoke_old_at)
            ));
        }
        if issued {
            let latest = self.now() + MAX_OVERLAP_SECS - 60;
            let moved = match &self.provider {
                Some(p) if latest > self.rot.revoke_old_at => match p.revoke_old_secret(self.app, Some(latest)) {
                    Ok(_) => {
                        self.rot.revoke_old_at = latest;
                        format!("{} moved the end of the overlap to {}", p.provider(), iso(latest))
                    }
                    Err(e) => format!("moving the end of the overlap failed ({})", e.message),
                },
                _ => String::new(),
            };
            note.push_str(&format!(
                "; {} cannot cancel a rotation: the old secret stops working at {}{}{}; `--resume` finishes the rotation with the secret it issued",
                self.provider_name(),
                iso(self.rot.revoke_old_at),
                if moved.is_empty() { "" } else { " — " },
                moved
            ));
        }
        self.reach(Step::Aborted, note)?;
        Ok(self.outcome(Vec::new()))
    }
}
