//! Who may do what on NATS: one identity per service, each with the publish and subscribe
//! rights its work needs and nothing more, derived from the stream and bucket layout.
//!
//! A single message with a wrong hash, or on a subject outside the catalogue, stops both
//! projections at its sequence. So only the command service may publish to the event subjects
//! and write the idempotency bucket; the projector reads the stream through its own durable
//! consumers; the query service records reads of the audit trail (its own aggregate only) and
//! walks the stream; the operator identity has every right in the account. Nobody connects
//! without a key.
//!
//! NATS permissions match whole subject tokens, so consumer names cannot be granted by prefix:
//! the projector's durable consumers are granted by their exact names, and stream walks use
//! ephemeral consumers the server names ([`crate::StreamReader`]), for which a reader may pull
//! from any consumer name except the projector's durables.

use crate::StreamSettings;

/// The account of a deployment that names none: every deployment made before accounts could be
/// named lives in it.
pub const DEFAULT_ACCOUNT: &str = "KH63";

/// The JetStream API's subject prefix in the account's own domain.
const API: &str = "$JS.API";

/// Schemas of the read-model projections (`readmodel::Projection`), without a prefix.
pub const PROJECTION_SCHEMAS: [&str; 2] = ["core", "audit"];

/// A service identity on NATS: one key pair, one user, one permission set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    CommandApi,
    Projector,
    QueryApi,
    /// The operator (`remediation-admin`): provisioning, seeding, verification, benchmarks.
    Admin,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::CommandApi,
        Service::Projector,
        Service::QueryApi,
        Service::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::CommandApi => "command-api",
            Service::Projector => "projector",
            Service::QueryApi => "query-api",
            Service::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Replies to this service's requests arrive under this prefix, and only this service may
    /// subscribe to it: no service reads another's replies.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name())
    }
}

/// The durable consumer a projection reads through.
pub fn projector_consumer(schema: &str) -> String {
    format!("projector-{schema}")
}

/// What one identity may publish and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    /// Carved out of `publish` (nats-server applies deny after allow).
    pub deny_publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The names the permissions are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The NATS account the deployment lives in (`NATS_ACCOUNT`): accounts share nothing —
    /// subjects, streams, buckets, consumers, inboxes — so deployments in accounts of their own
    /// on one server never see each other.
    account: String,
    stream: String,
    subject_prefix: String,
    bucket: String,
    /// The projector's durable consumer names.
    consumers: Vec<String>,
}

impl Layout {
    /// `schema_prefix` is the projector's `SCHEMA_PREFIX` (empty in a normal deployment): it
    /// names the projector's durable consumers.
    pub fn new(settings: &StreamSettings, schema_prefix: &str) -> Self {
        Self {
            account: DEFAULT_ACCOUNT.to_owned(),
            stream: settings.name.clone(),
            subject_prefix: settings.subject_prefix.clone(),
            bucket: settings.idempotency_bucket.clone(),
            consumers: PROJECTION_SCHEMAS
                .iter()
                .map(|schema| projector_consumer(&format!("{schema_prefix}{schema}")))
                .collect(),
        }
    }

    /// The same layout in the account `account` (an account name: letters, digits, `_`, `-`).
    pub fn in_account(self, account: &str) -> Self {
        Self {
            account: account.to_owned(),
            ..self
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The rights of `service`; `None` for the operator, who has them all.
    pub fn permissions(&self, service: Service) -> Option<Permissions> {
        let stream = &self.stream;
        let api = |rest: String| format!("{API}.{rest}");
        let inbox = vec![format!("{}.>", service.inbox_prefix())];
        // Walking the stream in order through ephemeral consumers the server names.
        let walk = [
            api(format!("CONSUMER.CREATE.{stream}")),
            api(format!("CONSUMER.MSG.NEXT.{stream}.*")),
        ];
        let permissions = match service {
            Service::Admin => return None,
            Service::CommandApi => {
                let kv = format!("KV_{}", self.bucket);
                let mut publish = vec![
                    format!("{}.>", self.subject_prefix),
                    format!("$KV.{}.>", self.bucket),
                ];
                // Provisioning at start (idempotent), reads by subject and sequence.
                for name in [stream, &kv] {
                    for call in ["INFO", "CREATE", "UPDATE", "MSG.GET"] {
                        publish.push(api(format!("STREAM.{call}.{name}")));
                    }
                }
                // Key-value reads (direct gets) and watchers (ordered consumers on the bucket).
                publish.extend([
                    api(format!("DIRECT.GET.{kv}")),
                    api(format!("DIRECT.GET.{kv}.>")),
                    api(format!("CONSUMER.CREATE.{kv}")),
                    api(format!("CONSUMER.CREATE.{kv}.>")),
                    api(format!("CONSUMER.INFO.{kv}.*")),
                    api(format!("CONSUMER.DELETE.{kv}.*")),
                    api(format!("CONSUMER.MSG.NEXT.{kv}.*")),
                    format!("$JS.ACK.{kv}.>"),
                    format!("$JS.FC.{kv}.>"),
                ]);
                Permissions {
                    publish,
                    deny_publish: Vec::new(),
                    subscribe: inbox,
                }
            }
            Service::Projector => {
                let mut publish = vec![
                    api(format!("STREAM.INFO.{stream}")),
                    // A stopped projection looks up the message it stopped at and the auditor's
                    // quarantine decision that would release it.
                    api(format!("STREAM.MSG.GET.{stream}")),
                ];
                for consumer in &self.consumers {
                    for call in ["CREATE", "INFO", "DELETE", "MSG.NEXT"] {
                        publish.push(api(format!("CONSUMER.{call}.{stream}.{consumer}")));
                    }
                    publish.push(format!("$JS.ACK.{stream}.{consumer}.>"));
                }
                publish.extend(walk);
                Permissions {
                    publish,
                    deny_publish: Vec::new(),
                    subscribe: inbox,
                }
            }
            Service::QueryApi => {
                let mut publish = vec![
                    // Reads of the audit trail, recorded in the access log and nowhere else.
                    format!("{}.access.>", self.subject_prefix),
                    api(format!("STREAM.INFO.{stream}")),
                    api(format!("STREAM.MSG.GET.{stream}")),
                    // Opening the event store looks the bucket up; it is never read or written.
                    api(format!("STREAM.INFO.KV_{}", self.bucket)),
                ];
                publish.extend(walk);
                Permissions {
                    publish,
                    // Pulling from a projector's durable consumer would take deliveries away
                    // from it and stall its projection.
                    deny_publish: self
                        .consumers
                        .iter()
                        .map(|consumer| api(format!("CONSUMER.MSG.NEXT.{stream}.{consumer}")))
                        .collect(),
                    subscribe: inbox,
                }
            }
        };
        Some(permissions)
    }

    /// An `accounts` block for nats-server (2.9 and later; `include`-able) with this layout's
    /// account alone: see [`render_accounts`].
    pub fn render(&self, users: &[(Service, String)]) -> String {
        render_accounts(&[(self, users)])
    }

    /// This layout's account: JetStream and one user per service identified by its public nkey.
    fn render_account(&self, users: &[(Service, String)], out: &mut String) {
        out.push_str(&format!(
            "  {}: {{\n    jetstream: enabled\n    users: [\n",
            self.account
        ));
        for (service, public_key) in users {
            out.push_str(&format!("      # {}\n", service.name()));
            match self.permissions(*service) {
                None => out.push_str(&format!("      {{ nkey: \"{public_key}\" }}\n")),
                Some(p) => {
                    out.push_str(&format!(
                        "      {{\n        nkey: \"{public_key}\"\n        permissions: {{\n"
                    ));
                    out.push_str("          publish: {\n");
                    push_list(out, "allow", &p.publish);
                    push_list(out, "deny", &p.deny_publish);
                    out.push_str("          }\n          subscribe: {\n");
                    push_list(out, "allow", &p.subscribe);
                    out.push_str("          }\n        }\n      }\n");
                }
            }
        }
        out.push_str("    ]\n  }\n");
    }
}

/// An `accounts` block for nats-server (2.9 and later; `include`-able): one account per
/// deployment, each with JetStream and its users. There is no anonymous user and no
/// `no_auth_user`, so a client without a key is refused.
pub fn render_accounts(deployments: &[(&Layout, &[(Service, String)])]) -> String {
    let mut out = String::from(
        "# Generated by `remediation-admin nats-credentials`: NATS users of the Plan 63 tracker.\n\
         # Every user authenticates with an nkey; there is no anonymous access.\n\
         accounts: {\n",
    );
    for (layout, users) in deployments {
        layout.render_account(users, &mut out);
    }
    out.push_str("}\n");
    out
}

/// One subject a line, quoted: an unquoted `$JS…` would be read as a variable reference.
fn push_list(out: &mut String, key: &str, subjects: &[String]) {
    if subjects.is_empty() {
        return;
    }
    out.push_str(&format!("            {key}: [\n"));
    for subject in subjects {
        out.push_str(&format!("              \"{subject}\"\n"));
    }
    out.push_str("            ]\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(&StreamSettings::default(), "")
    }

    fn may_publish(service: Service, subject: &str) -> bool {
        let Some(p) = layout().permissions(service) else {
            return true;
        };
        let matches = |pattern: &String| {
            let (mut pattern, mut subject) = (pattern.split('.'), subject.split('.'));
            loop {
                match (pattern.next(), subject.next()) {
                    (Some(">"), Some(_)) => return true,
                    (Some(p), Some(s)) if p == "*" || p == s => {}
                    (None, None) => return true,
                    _ => return false,
                }
            }
        };
        p.publish.iter().any(matches) && !p.deny_publish.iter().any(matches)
    }

    #[test]
    fn only_the_command_service_writes_events_and_idempotency_records() {
        for service in [Service::Projector, Service::QueryApi] {
            assert!(!may_publish(service, "events.item.kh-63-2025-01"));
            assert!(!may_publish(service, "$KV.PLAN_IDEMPOTENCY.key"));
            assert!(!may_publish(service, "$JS.API.STREAM.DELETE.PLAN_EVENTS"));
            assert!(!may_publish(service, "$JS.API.STREAM.PURGE.PLAN_EVENTS"));
        }
        assert!(may_publish(
            Service::CommandApi,
            "events.item.kh-63-2025-01"
        ));
        assert!(may_publish(Service::CommandApi, "$KV.PLAN_IDEMPOTENCY.key"));
        assert!(!may_publish(
            Service::CommandApi,
            "$JS.API.STREAM.DELETE.PLAN_EVENTS"
        ));
    }

    #[test]
    fn the_query_service_records_reads_but_cannot_take_the_projectors_deliveries() {
        assert!(may_publish(Service::QueryApi, "events.access.2025-07-01"));
        assert!(!may_publish(Service::QueryApi, "events.ledger.chains"));
        assert!(may_publish(
            Service::QueryApi,
            "$JS.API.CONSUMER.MSG.NEXT.PLAN_EVENTS.hWq0bXkP"
        ));
        assert!(!may_publish(
            Service::QueryApi,
            "$JS.API.CONSUMER.MSG.NEXT.PLAN_EVENTS.projector-core"
        ));
        assert!(!may_publish(
            Service::QueryApi,
            "$JS.API.CONSUMER.DELETE.PLAN_EVENTS.projector-core"
        ));
    }

    #[test]
    fn the_projector_manages_only_its_own_durable_consumers() {
        assert!(may_publish(
            Service::Projector,
            "$JS.API.CONSUMER.CREATE.PLAN_EVENTS.projector-audit"
        ));
        assert!(may_publish(
            Service::Projector,
            "$JS.ACK.PLAN_EVENTS.projector-core.1.5.5.1700000000000000000.0"
        ));
        assert!(!may_publish(
            Service::Projector,
            "$JS.API.CONSUMER.CREATE.PLAN_EVENTS.intruder"
        ));
        assert!(!may_publish(
            Service::Projector,
            "$JS.API.CONSUMER.DELETE.PLAN_EVENTS.intruder"
        ));
    }

    #[test]
    fn a_stopped_projector_may_look_up_the_message_and_its_quarantine_decision() {
        assert!(may_publish(
            Service::Projector,
            "$JS.API.STREAM.MSG.GET.PLAN_EVENTS"
        ));
        assert!(!may_publish(
            Service::Projector,
            "$JS.API.STREAM.MSG.DELETE.PLAN_EVENTS"
        ));
    }

    #[test]
    fn the_rendered_config_names_every_user_and_quotes_every_subject() {
        let users: Vec<(Service, String)> = Service::ALL
            .iter()
            .map(|s| (*s, format!("U{}", s.name().to_uppercase())))
            .collect();
        let conf = layout().render(&users);
        for (_, key) in &users {
            assert!(conf.contains(&format!("nkey: \"{key}\"")), "{conf}");
        }
        assert!(conf.contains("\"_INBOX_projector.>\""));
        assert!(!conf.contains("no_auth_user"));
        assert!(
            !conf
                .lines()
                .any(|line| line.contains("$JS") && !line.contains("\"$JS"))
        );
    }
}
