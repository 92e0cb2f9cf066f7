//! SMART on FHIR scopes (App Launch 1.0 and 2.0): their grammar, and which of a token's scopes
//! grant an interaction on a resource type. The FHIR server turns what they grant into
//! compartment and search filters; this module knows nothing of FHIR beyond the scope syntax.
//!
//! ```text
//! scope      = context "/" type "." permissions [ "?" query ]     (query: v2 only)
//! context    = "patient" | "user" | "system"
//! type       = "*" | a resource type name
//! v1         = "read" (= rs) | "write" (= cud) | "*" (= cruds)
//! v2         = one or more of c r u d s, each at most once, in that order
//! ```
//!
//! Entra ID cannot register a scope containing `/`, so its SMART setups write
//! `patient.Observation.read` and `patient.all.read`; those spellings are read too.
//!
//! A scope that starts like a SMART resource scope (`patient/`, `user/`, `system/`) but does not
//! parse grants nothing, yet still marks the token as scoped: a malformed scope must never turn
//! a token back into an unrestricted one. `openid`, `fhirUser`, `launch`, `launch/patient`,
//! `offline_access` and the like are recorded and grant no data access.

use std::fmt;

/// Whose data a resource scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// The patient in the token's launch context (its `patient` claim): the Patient compartment.
    Patient,
    /// Whatever the user may see; this server has no per-user access lists, so not narrowed by
    /// compartment.
    User,
    /// A backend service: not narrowed by compartment.
    System,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "patient" => Some(Context::Patient),
            "user" => Some(Context::User),
            "system" => Some(Context::System),
            _ => None,
        }
    }
}

/// The five SMART v2 permissions, one per kind of FHIR interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `c`: create (also the create half of a conditional create).
    Create,
    /// `r`: read by id; this server also counts vread and instance history.
    Read,
    /// `u`: update and patch (an update that creates is allowed by `u`, as the spec says).
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search (type, compartment, system); this server also counts type and system history.
    Search,
}

impl Interaction {
    pub const ALL: [Interaction; 5] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];

    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interaction::Create => "create",
            Interaction::Read => "read",
            Interaction::Update => "update",
            Interaction::Delete => "delete",
            Interaction::Search => "search",
        }
    }

    /// The v1 permission that includes it.
    pub fn v1(self) -> &'static str {
        match self {
            Interaction::Read | Interaction::Search => "read",
            _ => "write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }
}

impl fmt::Display for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Interaction`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const ALL: Permissions = Permissions(31);
    /// v1 `read`.
    pub const READ: Permissions = Permissions(2 | 16);
    /// v1 `write`.
    pub const WRITE: Permissions = Permissions(1 | 4 | 8);

    pub fn allows(self, i: Interaction) -> bool {
        self.0 & i.bit() != 0
    }

    /// v2 letters: at least one of `cruds`, each at most once, in that order.
    pub fn parse_v2(s: &str) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        let mut bits = 0u8;
        let mut last = None;
        for c in s.chars() {
            let pos = "cruds".find(c)?;
            if last.is_some_and(|l| pos <= l) {
                return None;
            }
            last = Some(pos);
            bits |= 1 << pos;
        }
        Some(Permissions(bits))
    }

    /// The v2 letters (`cruds` order).
    pub fn letters(self) -> String {
        Interaction::ALL
            .iter()
            .filter(|i| self.allows(**i))
            .map(|i| i.letter())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `.read`, `.write`, `.*`
    V1,
    /// `.cruds` subsets, optionally `?query`.
    V2,
}

/// One `context/type.permissions[?query]` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    pub context: Context,
    /// `None` is `*`: every resource type.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// SMART v2 finer-grained scope: the search (as written after `?`, still URL-encoded) a
    /// resource must match for the scope to cover it.
    pub constraint: Option<String>,
    pub syntax: Syntax,
    /// The scope as the token wrote it.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not a resource scope at all (`openid`, `launch/patient`, an API's own scope): ignored.
    #[error("'{0}' is not a SMART resource scope")]
    NotResource(String),
    /// Shaped like a resource scope but malformed: grants nothing.
    #[error("'{scope}' is not a valid SMART scope: {reason}")]
    Invalid { scope: String, reason: String },
}

impl ResourceScope {
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let not = || ScopeError::NotResource(text.to_owned());
        let invalid = |reason: &str| ScopeError::Invalid {
            scope: text.to_owned(),
            reason: reason.to_owned(),
        };
        // `patient/...`, or Entra's `patient.Observation.read` (whose type may be `all`).
        let head = text.find(['/', '.']).ok_or_else(not)?;
        let context = Context::parse(&text[..head]).ok_or_else(not)?;
        let (rest, dotted) = (&text[head + 1..], text[head..].starts_with('.'));
        let (body, constraint) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (ty, perms) = body
            .split_once('.')
            .ok_or_else(|| invalid("it needs '<type>.<permissions>' after the context"))?;
        let resource_type = match ty {
            "*" => None,
            "all" if dotted => None,
            t if is_type_name(t) => Some(t.to_owned()),
            _ => return Err(invalid("the resource type must be '*' or a type name")),
        };
        let (permissions, syntax) = match perms {
            "read" => (Permissions::READ, Syntax::V1),
            "write" => (Permissions::WRITE, Syntax::V1),
            "*" => (Permissions::ALL, Syntax::V1),
            p => (
                Permissions::parse_v2(p).ok_or_else(|| {
                    invalid(
                        "permissions are read, write, * (v1) or letters of 'cruds' in order (v2)",
                    )
                })?,
                Syntax::V2,
            ),
        };
        let constraint = match constraint {
            None => None,
            Some(_) if syntax == Syntax::V1 => {
                return Err(invalid("only v2 scopes (.cruds) may carry a ?query"));
            }
            Some("") => return Err(invalid("the ?query is empty")),
            Some(q) => Some(q.to_owned()),
        };
        Ok(ResourceScope {
            context,
            resource_type,
            permissions,
            constraint,
            syntax,
            text: text.to_owned(),
        })
    }

    /// Whether it is about `resource_type` (or every type).
    pub fn covers_type(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }

    /// Whether it grants `interaction` on `resource_type`, before its context and constraint
    /// narrow it.
    pub fn grants(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.covers_type(resource_type) && self.permissions.allows(interaction)
    }
}

/// `A-Z` then letters: the shape of every FHIR resource type name.
fn is_type_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_uppercase()) && cs.all(|c| c.is_ascii_alphanumeric())
}

fn is_slash_form(s: &str) -> bool {
    ["patient/", "user/", "system/"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Everything a token's scopes say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scopes {
    pub resources: Vec<ResourceScope>,
    /// `patient/…`, `user/…` and `system/…` scopes that do not parse, with the reason.
    pub invalid: Vec<ScopeError>,
    pub openid: bool,
    pub fhir_user: bool,
    pub launch: bool,
    pub launch_patient: bool,
    pub launch_encounter: bool,
    pub offline_access: bool,
    pub online_access: bool,
}

impl Scopes {
    pub fn parse<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Scopes::default();
        for s in scopes {
            match s {
                "openid" => out.openid = true,
                "fhirUser" => out.fhir_user = true,
                "launch" => out.launch = true,
                "launch/patient" | "launch.patient" => out.launch_patient = true,
                "launch/encounter" | "launch.encounter" => out.launch_encounter = true,
                "offline_access" => out.offline_access = true,
                "online_access" => out.online_access = true,
                _ => match ResourceScope::parse(s) {
                    Ok(r) => out.resources.push(r),
                    // Only the slash form is unmistakably SMART; a dotted scope that does not
                    // parse (Graph's `user.read`, say) is some other API's and is ignored.
                    Err(e @ ScopeError::Invalid { .. }) if is_slash_form(s) => out.invalid.push(e),
                    Err(_) => {}
                },
            }
        }
        out
    }

    /// Whether the token carries SMART resource scopes (valid or not). Such a token may do only
    /// what they grant, whatever its roles.
    pub fn is_scoped(&self) -> bool {
        !self.resources.is_empty() || !self.invalid.is_empty()
    }

    /// Whether any resource scope has this context.
    pub fn uses(&self, context: Context) -> bool {
        self.resources.iter().any(|r| r.context == context)
    }

    /// The scopes granting `interaction` on `resource_type` (before context and constraint).
    pub fn granting<'s>(
        &'s self,
        resource_type: &'s str,
        interaction: Interaction,
    ) -> impl Iterator<Item = &'s ResourceScope> + 's {
        self.resources
            .iter()
            .filter(move |r| r.grants(resource_type, interaction))
    }

    /// What a token would need for `interaction` on `resource_type`, for a 403's diagnostics.
    pub fn missing(resource_type: &str, interaction: Interaction) -> String {
        let l = interaction.letter();
        format!(
            "no scope of the token grants '{interaction}' on {resource_type}: it needs \
             patient/{resource_type}.{l}, user/{resource_type}.{l} or system/{resource_type}.{l} \
             (or a wider one such as user/*.{l} or v1 user/{resource_type}.{})",
            interaction.v1()
        )
    }
}

/// The authority's OpenID discovery document (`{issuer}/.well-known/openid-configuration`),
/// for `/.well-known/smart-configuration` and the CapabilityStatement's oauth-uris. The only
/// network call of this module; callers cache the answer.
pub async fn fetch_discovery(
    issuer: &str,
    timeout: std::time::Duration,
) -> Result<serde_json::Value, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let doc: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if doc.is_object() {
        Ok(doc)
    } else {
        Err(format!("{url} is not a JSON object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;

    fn scope(s: &str) -> ResourceScope {
        ResourceScope::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn allowed(s: &str) -> String {
        scope(s).permissions.letters()
    }

    #[test]
    fn v1_scopes_map_to_v2_permissions() {
        assert_eq!(allowed("patient/Observation.read"), "rs");
        assert_eq!(allowed("user/*.write"), "cud");
        assert_eq!(allowed("system/*.*"), "cruds");
        let s = scope("patient/*.read");
        assert_eq!(s.context, Context::Patient);
        assert_eq!(s.resource_type, None);
        assert_eq!(s.syntax, Syntax::V1);
        assert!(s.grants("Condition", Read) && s.grants("Condition", Search));
        assert!(!s.grants("Condition", Create));
        let s = scope("user/Patient.write");
        assert!(s.grants("Patient", Update) && s.grants("Patient", Delete));
        assert!(!s.grants("Patient", Read), "v1 write does not read");
        assert!(!s.grants("Observation", Update), "other types");
    }

    #[test]
    fn v2_permissions_are_ordered_subsets_of_cruds() {
        assert_eq!(allowed("patient/Observation.rs"), "rs");
        assert_eq!(allowed("patient/Observation.cud"), "cud");
        assert_eq!(allowed("user/*.cruds"), "cruds");
        assert_eq!(allowed("system/Patient.r"), "r");
        let r = scope("patient/Observation.r");
        assert!(r.grants("Observation", Read));
        assert!(!r.grants("Observation", Search), ".r does not search");
        assert_eq!(r.syntax, Syntax::V2);
        for bad in [
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.x",
            "patient/Observation.",
            "patient/Observation.crudsx",
            "patient/Observation.READ",
        ] {
            assert!(
                matches!(ResourceScope::parse(bad), Err(ScopeError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn v2_query_constraints_are_kept_as_written() {
        let s = scope("patient/Observation.rs?category=laboratory");
        assert_eq!(s.constraint.as_deref(), Some("category=laboratory"));
        assert_eq!(s.resource_type.as_deref(), Some("Observation"));
        let s = scope(
            "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs&status=final",
        );
        assert_eq!(
            s.constraint.as_deref(),
            Some(
                "category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs&status=final"
            )
        );
        // v1 scopes carry no query; an empty query is a mistake, not "everything".
        assert!(ResourceScope::parse("patient/Observation.read?category=x").is_err());
        assert!(ResourceScope::parse("patient/Observation.rs?").is_err());
    }

    #[test]
    fn wildcards_and_entra_spellings() {
        let s = scope("patient/*.rs");
        assert!(s.covers_type("Observation") && s.covers_type("Patient"));
        let s = scope("patient.all.read");
        assert_eq!(
            (s.context, s.resource_type.clone()),
            (Context::Patient, None)
        );
        let s = scope("user.Observation.rs");
        assert_eq!(s.resource_type.as_deref(), Some("Observation"));
        let s = scope("patient.Observation.rs?category=http://x.org/cs|lab");
        assert_eq!(
            s.constraint.as_deref(),
            Some("category=http://x.org/cs|lab")
        );
        // `all` is only Entra's spelling of `*`, not a type name in the slash form.
        assert!(ResourceScope::parse("patient/all.read").is_err());
        assert!(ResourceScope::parse("patient/observation.read").is_err());
    }

    #[test]
    fn other_scopes_are_recorded_and_grant_no_data() {
        let s = Scopes::parse([
            "openid",
            "fhirUser",
            "launch",
            "launch/patient",
            "offline_access",
            "online_access",
            "profile",
            "api://fhir/user_impersonation",
            "User.Read",
            "user.read",
        ]);
        assert!(s.openid && s.fhir_user && s.launch && s.launch_patient);
        assert!(s.offline_access && s.online_access);
        assert!(s.resources.is_empty() && s.invalid.is_empty(), "{s:?}");
        assert!(
            !s.is_scoped(),
            "no SMART resource scope: roles alone decide"
        );
        assert_eq!(s.granting("Patient", Read).count(), 0);
    }

    #[test]
    fn invalid_scopes_grant_nothing_but_keep_the_token_scoped() {
        let s = Scopes::parse(["patient/Observation.bogus", "user/.read", "system/*"]);
        assert!(s.resources.is_empty());
        assert_eq!(s.invalid.len(), 3);
        assert!(s.is_scoped());
        assert_eq!(s.granting("Observation", Read).count(), 0);
        let s = Scopes::parse(["patient/Observation.bogus", "patient/Condition.rs", ""]);
        assert_eq!(s.resources.len(), 1);
        assert_eq!(s.granting("Condition", Search).count(), 1);
        assert_eq!(s.granting("Observation", Search).count(), 0);
    }

    #[test]
    fn granting_combines_contexts_and_types() {
        let s = Scopes::parse([
            "patient/Observation.rs",
            "user/*.r",
            "system/Patient.cud",
            "patient/Condition.rs?clinical-status=active",
        ]);
        assert!(s.uses(Context::Patient) && s.uses(Context::User));
        let texts = |rt, i| {
            s.granting(rt, i)
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            texts("Observation", Read),
            ["patient/Observation.rs", "user/*.r"]
        );
        assert_eq!(texts("Observation", Search), ["patient/Observation.rs"]);
        assert_eq!(texts("Patient", Delete), ["system/Patient.cud"]);
        assert_eq!(
            texts("Condition", Search),
            ["patient/Condition.rs?clinical-status=active"]
        );
        assert!(texts("Encounter", Search).is_empty());
        let m = Scopes::missing("Encounter", Search);
        assert!(
            m.contains("patient/Encounter.s") && m.contains("read"),
            "{m}"
        );
    }
}
