//! Azure's two DICOM roles: DICOM Data Reader reads, DICOM Data Owner also stores and deletes;
//! FHIR roles grant nothing here, and a missing or bad token is a 401.

mod common;

use common::*;

#[tokio::test]
async fn roles_decide_what_a_caller_may_do() {
    let t = start_secured(|_| {}).await;
    let s = &t.s;
    let token = |roles: &[&str]| t.token("app", roles);
    let ct = file("CT_small.dcm");
    let (ctype, body) = multipart(&[("application/dicom", &ct)]);
    let post = |t: Option<String>| {
        let mut r = s
            .http
            .post(s.url("studies"))
            .header("content-type", ctype.clone())
            .body(body.clone());
        if let Some(t) = t {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("not.a.token".into())).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(Some(token(&["DICOM Data Reader"])))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(Some(token(&["FHIR Data Contributor"])))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(Some(token(&["DICOM Data Owner"])))
            .await
            .unwrap()
            .status(),
        200
    );

    let read = |t: String| s.http.get(s.url("studies")).bearer_auth(t).send();
    assert_eq!(
        read(token(&["DICOM Data Reader"])).await.unwrap().status(),
        200
    );
    assert_eq!(
        read(token(&["FHIR Data Reader"])).await.unwrap().status(),
        403
    );
    let r = s.http.get(s.url("v2/changefeed")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the change feed needs a token too");
    assert!(r.headers().contains_key("www-authenticate"));

    let del = |t: String| {
        s.http
            .delete(s.url("studies/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(
        del(token(&["DICOM Data Reader"])).await.unwrap().status(),
        403
    );
    assert_eq!(
        del(token(&["DICOM Data Owner"])).await.unwrap().status(),
        204
    );
}
