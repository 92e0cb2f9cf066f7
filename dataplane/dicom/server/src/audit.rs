//! One audit record per request (docs/audit.md), through the layer every service shares
//! ([`hds_common::audit`]). What is DICOM's own: the record names the DICOMweb transaction and
//! the partition and UIDs the path holds, so a reader of the log can tell who retrieved which
//! study without parsing URLs.

use axum::extract::Request;
use axum::http::Method;
use hds_auth::audit::{ServiceRef, What};
use hds_common::audit::{Audited, Auditor};
use hds_common::config::DicomServiceConfig;

use crate::AppState;

/// Opens the configured audit log.
pub(crate) fn start(config: &DicomServiceConfig) -> Auditor {
    let service = ServiceRef {
        kind: "dicom",
        name: config.name.clone(),
        workspace: config.workspace.clone(),
    };
    Auditor::open(service, &config.audit.log)
}

/// The log must open, and AuditEvents (FHIR resources) have nowhere to go here.
pub(crate) fn check(config: &DicomServiceConfig) -> Result<(), String> {
    if config.audit.audit_events {
        return Err(
            "audit.auditEvents needs a FHIR store; a DICOM service writes its audit log only"
                .into(),
        );
    }
    hds_common::audit::check(&config.audit.log)
}

impl Audited for AppState {
    fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    fn describe(&self, req: &Request, what: &mut What) {
        what.path = hds_common::audit::below(&self.prefix, req.uri().path()).to_owned();
        let path = what.path.clone();
        describe(req.method(), &path, what);
    }
}

/// The transaction a request is, and what its path names, from the service's routes (at the
/// root, under `/v1` or `/v2`, and under `/partitions/{name}`).
fn describe(method: &Method, path: &str, what: &mut What) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut rest = segments.as_slice();
    if let ["v1" | "v2", tail @ ..] = rest {
        rest = tail;
    }
    if let ["partitions", name, tail @ ..] = rest {
        what.partition = Some((*name).to_owned());
        rest = tail;
    }
    for pair in rest.windows(2) {
        let uid = Some(pair[1].to_owned());
        match pair[0] {
            "studies" => what.study_instance_uid = uid,
            "series" => what.series_instance_uid = uid,
            "instances" => what.sop_instance_uid = uid,
            _ => {}
        }
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    let operation = match rest {
        ["changefeed", ..] => "CHANGEFEED",
        ["extendedquerytags", ..] => "EXTENDED-QUERY-TAGS",
        ["operations", ..] => "OPERATION",
        ["studies"] | ["studies", _] if *method == Method::POST || *method == Method::PUT => "STOW",
        ["studies", ..] if *method == Method::DELETE => "DELETE",
        [.., "studies" | "series" | "instances"] if read => "QIDO",
        [.., "metadata"] if read => "WADO-METADATA",
        [.., "rendered"] if read => "WADO-RENDERED",
        [.., "frames", _] if read => "WADO-FRAMES",
        _ if read && rest.contains(&"bulkdata") => "WADO-BULKDATA",
        ["studies", _, ..] if read => "WADO",
        _ => return,
    };
    what.operation = Some(operation.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str) -> What {
        let mut w = What::default();
        describe(&method, path, &mut w);
        w
    }

    #[test]
    fn routes_name_their_transaction_and_uids() {
        for (m, p, op) in [
            (Method::POST, "/studies", "STOW"),
            (Method::PUT, "/v2/studies/1.2", "STOW"),
            (Method::GET, "/studies", "QIDO"),
            (Method::GET, "/studies/1.2/series/1.3/instances", "QIDO"),
            (Method::GET, "/studies/1.2", "WADO"),
            (Method::GET, "/studies/1.2/series/1.3/instances/1.4", "WADO"),
            (Method::GET, "/studies/1.2/metadata", "WADO-METADATA"),
            (
                Method::GET,
                "/studies/1.2/series/1.3/instances/1.4/frames/1,2",
                "WADO-FRAMES",
            ),
            (
                Method::GET,
                "/studies/1.2/series/1.3/instances/1.4/frames/1/rendered",
                "WADO-RENDERED",
            ),
            (
                Method::GET,
                "/studies/1.2/series/1.3/instances/1.4/bulkdata/7FE00010",
                "WADO-BULKDATA",
            ),
            (Method::DELETE, "/studies/1.2/series/1.3", "DELETE"),
            (Method::GET, "/v1/changefeed/latest", "CHANGEFEED"),
            (
                Method::PATCH,
                "/extendedquerytags/PatientAge",
                "EXTENDED-QUERY-TAGS",
            ),
        ] {
            assert_eq!(of(m.clone(), p).operation.as_deref(), Some(op), "{m} {p}");
        }
        let w = of(
            Method::GET,
            "/v2/partitions/p1/studies/1.2/series/1.3/instances/1.4/metadata",
        );
        assert_eq!(w.partition.as_deref(), Some("p1"));
        assert_eq!(w.study_instance_uid.as_deref(), Some("1.2"));
        assert_eq!(w.series_instance_uid.as_deref(), Some("1.3"));
        assert_eq!(w.sop_instance_uid.as_deref(), Some("1.4"));
        let w = of(Method::GET, "/studies/1.2/series");
        assert_eq!(w.series_instance_uid, None, "a QIDO level names no series");
        assert_eq!(of(Method::GET, "/nowhere").operation, None);
    }
}
