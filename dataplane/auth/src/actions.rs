//! Data actions and the built-in roles that grant them, after Azure Health Data Services (role
//! names and ids as Azure's) and the data actions of Microsoft's open-source FHIR server.

use std::fmt;

/// What a request does to the data. Each endpoint needs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataAction {
    Read,
    Write,
    Delete,
    HardDelete,
    Export,
    Import,
    ConvertData,
    ResourceValidate,
    Reindex,
    SearchParameter,
    Smart,
}

impl DataAction {
    pub const ALL: [DataAction; 11] = [
        DataAction::Read,
        DataAction::Write,
        DataAction::Delete,
        DataAction::HardDelete,
        DataAction::Export,
        DataAction::Import,
        DataAction::ConvertData,
        DataAction::ResourceValidate,
        DataAction::Reindex,
        DataAction::SearchParameter,
        DataAction::Smart,
    ];

    /// A data action as Azure writes it in `allowedDataActions` (`Read`) or as ours prints it,
    /// in any case.
    pub fn parse(name: &str) -> Option<DataAction> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name.trim()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataAction::Read => "read",
            DataAction::Write => "write",
            DataAction::Delete => "delete",
            DataAction::HardDelete => "hardDelete",
            DataAction::Export => "export",
            DataAction::Import => "import",
            DataAction::ConvertData => "convertData",
            DataAction::ResourceValidate => "resourceValidate",
            DataAction::Reindex => "reindex",
            DataAction::SearchParameter => "searchParameter",
            DataAction::Smart => "smart",
        }
    }
}

impl fmt::Display for DataAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Azure's built-in data-plane roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    FhirDataReader,
    FhirDataWriter,
    FhirDataContributor,
    FhirDataExporter,
    FhirDataImporter,
    FhirDataConverter,
    FhirSmartUser,
    DicomDataOwner,
    DicomDataReader,
}

/// (role, Azure display name, Azure role definition id)
const ROLES: &[(Role, &str, &str)] = &[
    (
        Role::FhirDataReader,
        "FHIR Data Reader",
        "4c8d0bbc-75d3-4935-991f-5f3c56d81508",
    ),
    (
        Role::FhirDataWriter,
        "FHIR Data Writer",
        "3f88fce4-5892-4214-ae73-ba5294559913",
    ),
    (
        Role::FhirDataContributor,
        "FHIR Data Contributor",
        "5a1fc7df-4bf1-4951-a576-89034ee01acd",
    ),
    (
        Role::FhirDataExporter,
        "FHIR Data Exporter",
        "3db33094-8700-4567-8da5-1501d4e7e843",
    ),
    (
        Role::FhirDataImporter,
        "FHIR Data Importer",
        "4465e953-8ced-4406-a58e-0f6e3f3b530b",
    ),
    (
        Role::FhirDataConverter,
        "FHIR Data Converter",
        "a1705bd2-3a8f-45a5-8683-466fcfd5cc24",
    ),
    (
        Role::FhirSmartUser,
        "FHIR SMART User",
        "4ba50f17-9666-485c-a643-ff00808643f0",
    ),
    (
        Role::DicomDataOwner,
        "DICOM Data Owner",
        "58a3b984-7adf-4c20-983a-32417c86fbc8",
    ),
    (
        Role::DicomDataReader,
        "DICOM Data Reader",
        "e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a",
    ),
];

impl Role {
    /// A role as a token names it: Azure's display name in any case, the same words joined by
    /// hyphens (`fhir-data-reader`, for issuers whose role names cannot hold spaces), or
    /// Azure's role definition id.
    pub fn parse(name: &str) -> Option<Role> {
        let folded: String = name
            .chars()
            .map(|c| if c == '-' || c == '_' { ' ' } else { c })
            .collect();
        ROLES.iter().find_map(|(role, display, id)| {
            (display.eq_ignore_ascii_case(folded.trim()) || id.eq_ignore_ascii_case(name))
                .then_some(*role)
        })
    }

    pub fn name(self) -> &'static str {
        ROLES
            .iter()
            .find(|(r, _, _)| *r == self)
            .map(|(_, n, _)| *n)
            .unwrap_or_default()
    }

    /// Whether the role grants `action` on a service of `kind`. Contributor and DICOM Owner are
    /// Azure's `*`; FHIR roles grant nothing on DICOM and the other way round.
    pub fn grants(self, kind: ServiceKind, action: DataAction) -> bool {
        use DataAction as A;
        match (kind, self) {
            (ServiceKind::Fhir, Role::FhirDataContributor) => true,
            (ServiceKind::Fhir, Role::FhirDataReader) => action == A::Read,
            (ServiceKind::Fhir, Role::FhirDataWriter) => {
                matches!(action, A::Read | A::Write | A::Delete)
            }
            (ServiceKind::Fhir, Role::FhirDataExporter) => matches!(action, A::Read | A::Export),
            (ServiceKind::Fhir, Role::FhirDataImporter) => matches!(action, A::Read | A::Import),
            (ServiceKind::Fhir, Role::FhirDataConverter) => action == A::ConvertData,
            // Only ever through the token's SMART scopes (see [`Role::needs_scopes`]): with
            // them, a SMART user may read, search, write and delete what they grant.
            (ServiceKind::Fhir, Role::FhirSmartUser) => {
                matches!(action, A::Read | A::Write | A::Delete | A::Smart)
            }
            (ServiceKind::Dicom, Role::DicomDataOwner) => {
                matches!(action, A::Read | A::Write | A::Delete)
            }
            (ServiceKind::Dicom, Role::DicomDataReader) => action == A::Read,
            _ => false,
        }
    }
}

impl Role {
    /// Whether what the role grants holds only within the token's SMART scopes: a token with
    /// this role and no SMART resource scope may do nothing with it.
    pub fn needs_scopes(self) -> bool {
        self == Role::FhirSmartUser
    }
}

/// How a token's roles relate to one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleGrant {
    /// No role grants it.
    Denied,
    /// A role grants it outright (SMART scopes on the token may still narrow it).
    Granted,
    /// Only roles that act through SMART scopes grant it: the token's scopes must allow it.
    ThroughScopes,
}

/// Whether `roles` grant `action`, and on what terms.
pub fn role_grant<'a>(
    roles: impl IntoIterator<Item = &'a str>,
    kind: ServiceKind,
    action: DataAction,
) -> RoleGrant {
    let mut through_scopes = false;
    for role in roles.into_iter().filter_map(Role::parse) {
        if role.grants(kind, action) {
            if !role.needs_scopes() {
                return RoleGrant::Granted;
            }
            through_scopes = true;
        }
    }
    if through_scopes {
        RoleGrant::ThroughScopes
    } else {
        RoleGrant::Denied
    }
}

/// Which service's data an action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Fhir,
    Dicom,
}

/// Whether any of `roles` (as the token names them) grants `action`.
pub fn allowed<'a>(
    roles: impl IntoIterator<Item = &'a str>,
    kind: ServiceKind,
    action: DataAction,
) -> bool {
    roles
        .into_iter()
        .filter_map(Role::parse)
        .any(|r| r.grants(kind, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_by_name_kebab_case_and_id() {
        assert_eq!(Role::parse("FHIR Data Reader"), Some(Role::FhirDataReader));
        assert_eq!(Role::parse("fhir-data-writer"), Some(Role::FhirDataWriter));
        assert_eq!(Role::parse("fhir_smart_user"), Some(Role::FhirSmartUser));
        assert_eq!(
            Role::parse("5A1FC7DF-4BF1-4951-A576-89034EE01ACD"),
            Some(Role::FhirDataContributor)
        );
        assert_eq!(Role::parse("admin"), None);
        for (role, name, _) in ROLES {
            assert_eq!(Role::parse(name), Some(*role));
            assert_eq!(role.name(), *name);
        }
    }

    #[test]
    fn roles_grant_azures_actions_and_nothing_else() {
        use DataAction as A;
        use ServiceKind::*;
        let r = |n: &str, k, a| allowed([n], k, a);
        assert!(r("FHIR Data Reader", Fhir, A::Read));
        assert!(!r("FHIR Data Reader", Fhir, A::Write));
        assert!(r("FHIR Data Writer", Fhir, A::Delete));
        assert!(!r("FHIR Data Writer", Fhir, A::HardDelete));
        assert!(!r("FHIR Data Writer", Fhir, A::Reindex));
        assert!(r("FHIR Data Contributor", Fhir, A::Reindex));
        assert!(r("FHIR Data Exporter", Fhir, A::Export));
        assert!(!r("FHIR Data Exporter", Fhir, A::Import));
        assert!(r("FHIR Data Importer", Fhir, A::Import));
        assert!(r("FHIR Data Converter", Fhir, A::ConvertData));
        assert!(!r("FHIR Data Converter", Fhir, A::Read));
        assert!(!r("FHIR Data Contributor", Dicom, A::Read));
        assert!(r("DICOM Data Owner", Dicom, A::Delete));
        assert!(!r("DICOM Data Reader", Dicom, A::Write));
        assert!(!r("DICOM Data Owner", Fhir, A::Read));
        assert!(!allowed([], Fhir, A::Read));
    }

    #[test]
    fn smart_users_read_write_and_delete_only_through_scopes() {
        use DataAction as A;
        use ServiceKind::*;
        for a in [A::Read, A::Write, A::Delete, A::Smart] {
            assert!(allowed(["FHIR SMART User"], Fhir, a), "{a}");
            assert_eq!(
                role_grant(["FHIR SMART User"], Fhir, a),
                RoleGrant::ThroughScopes,
                "{a}"
            );
        }
        for a in [
            A::HardDelete,
            A::Export,
            A::Import,
            A::Reindex,
            A::SearchParameter,
            A::ConvertData,
        ] {
            assert!(!allowed(["FHIR SMART User"], Fhir, a), "{a}");
            assert_eq!(
                role_grant(["FHIR SMART User"], Fhir, a),
                RoleGrant::Denied,
                "{a}"
            );
        }
        assert!(!allowed(["FHIR SMART User"], Dicom, A::Read));
        assert!(Role::FhirSmartUser.needs_scopes());
        assert!(!Role::FhirDataReader.needs_scopes());
        // A role that grants the action outright wins over the SMART user role.
        assert_eq!(
            role_grant(["FHIR SMART User", "FHIR Data Reader"], Fhir, A::Read),
            RoleGrant::Granted
        );
        assert_eq!(
            role_grant(["FHIR SMART User", "FHIR Data Reader"], Fhir, A::Write),
            RoleGrant::ThroughScopes
        );
        assert_eq!(role_grant(["admin"], Fhir, A::Read), RoleGrant::Denied);
    }
}
