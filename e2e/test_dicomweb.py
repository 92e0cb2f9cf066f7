"""The DICOM service under `hds up -f examples/`, driven by dicomweb-client and pydicom (neither
written here): store pydicom's bundled test files, search, retrieve byte for byte, metadata,
frames, rendered images, delete, the change feed, and refusals of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from conftest import EXAMPLES, client_token, run_hds

# Compressed and uncompressed, single and multi-frame; all in pydicom's own package.
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle_2frame.dcm",
    "rtdose.dcm",
    "JPGExtended.dcm",
    "examples_ybr_color.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
]


@pytest.fixture(scope="module")
def dicom_url(hds_server) -> str:
    services = [s for s in hds_server.endpoints["services"] if s["kind"] == "DicomService"]
    assert len(services) == 1, hds_server.endpoints
    return services[0]["url"]


@pytest.fixture(scope="module")
def session(hds_server) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {client_token(hds_server.endpoints)}"
    return s


@pytest.fixture(scope="module")
def client(dicom_url, session) -> DICOMwebClient:
    return DICOMwebClient(url=dicom_url, session=session)


def fresh(name: str) -> pydicom.Dataset:
    """A test file under new UIDs, so the module can run against a service that keeps data."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def as_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_store_search_and_retrieve_byte_for_byte(client, dicom_url, session):
    stored = {}
    for name in FILES:
        ds = fresh(name)
        data = as_bytes(ds)
        # dicomweb-client re-encodes datasets it sends; send the exact bytes instead, as a
        # modality would, so the retrieve can be compared byte for byte.
        ds2 = pydicom.dcmread(io.BytesIO(data))
        client.store_instances([ds2])
        stored[name] = (ds, data)

    for name, (ds, data) in stored.items():
        found = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
        assert len(found) == 1, name
        study = pydicom.Dataset.from_json(found[0])
        assert study.StudyInstanceUID == ds.StudyInstanceUID
        assert study.NumberOfStudyRelatedInstances == 1
        series = client.search_for_series(ds.StudyInstanceUID)
        assert [pydicom.Dataset.from_json(s).SeriesInstanceUID for s in series] == [ds.SeriesInstanceUID]
        instances = client.search_for_instances(ds.StudyInstanceUID, ds.SeriesInstanceUID)
        assert pydicom.Dataset.from_json(instances[0]).SOPInstanceUID == ds.SOPInstanceUID

        # As stored: the very bytes pydicom wrote.
        r = session.get(
            f"{dicom_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
            headers={"Accept": "application/dicom; transfer-syntax=*"},
        )
        assert r.status_code == 200, (name, r.text)
        assert r.content == data, name
        got = client.retrieve_instance(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            media_types=(("application/dicom", "*"),),
        )
        assert got.SOPInstanceUID == ds.SOPInstanceUID

        meta = client.retrieve_study_metadata(ds.StudyInstanceUID)
        assert len(meta) == 1
        m = pydicom.Dataset.from_json(meta[0], bulk_data_uri_handler=lambda *a: b"")
        assert m.SOPInstanceUID == ds.SOPInstanceUID
        assert m.PatientID == ds.get("PatientID", m.get("PatientID"))
        assert "BulkDataURI" in meta[0]["7FE00010"], name


def test_frames_and_rendered_images(client, dicom_url, session):
    ds = fresh("rtdose.dcm")  # native multi-frame
    n = int(ds.NumberOfFrames)
    assert n > 3
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(ds)))])
    frames = client.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[1, 3, n]
    )
    assert len(frames) == 3
    size = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    assert all(len(f) == size for f in frames)
    assert frames[1] == ds.PixelData[2 * size : 3 * size]
    png = client.retrieve_instance_frames_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[2],
        media_types=("image/png",),
    )
    assert png.startswith(b"\x89PNG")
    r = session.get(
        f"{dicom_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/{n + 1}",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert r.status_code == 404

    rle = fresh("SC_rgb_rle_2frame.dcm")
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(rle)))])
    decoded = client.retrieve_instance_frames(
        rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID, frame_numbers=[2]
    )
    assert len(decoded[0]) == rle.Rows * rle.Columns * 3


def test_delete_and_the_change_feed(client, dicom_url, session):
    ds = fresh("CT_small.dcm")
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(ds)))])
    latest = session.get(f"{dicom_url}/changefeed/latest").json()
    assert latest["SopInstanceUid"] == ds.SOPInstanceUID
    assert latest["Action"] == "Create" and latest["State"] == "Current"
    client.delete_study(ds.StudyInstanceUID)
    assert client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID}) == []
    feed = session.get(f"{dicom_url}/changefeed", params={"offset": latest["Sequence"] - 1, "limit": 10}).json()
    assert [(e["Action"], e["State"]) for e in feed] == [("Create", "Deleted"), ("Delete", "Deleted")]


def test_a_client_of_the_v2_api_follows_what_a_search_gives(client, dicom_url, session):
    ds = fresh("CT_small.dcm")
    ds.PatientID = generate_uid()[-16:]
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(ds)))])
    v2 = DICOMwebClient(url=f"{dicom_url}/v2", session=session)
    # A binary attribute asked for by name is a link the client can follow from a v2 search.
    found = v2.search_for_instances(ds.StudyInstanceUID, ds.SeriesInstanceUID, fields=["PixelData"])
    uri = found[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(dicom_url), uri
    assert b"".join(v2.retrieve_bulkdata(uri)) == ds.PixelData
    # NUL padding in a match value, and the parameter spellings of Azure's own examples.
    r = session.get(
        f"{dicom_url}/v2/studies",
        params={
            "PatientID": ds.PatientID + "\0",
            "PatientName": "ct1",
            "fuzzyMatching": "True",
            "IncludeField": "PatientAge",
        },
    )
    assert r.status_code == 200, r.text
    assert [s["0020000D"]["Value"][0] for s in r.json()] == [ds.StudyInstanceUID]
    window = {"endtime": "2000-01-01T00:00:00Z", "includemetadata": "False"}
    r = session.get(f"{dicom_url}/v2/changefeed", params=window)
    assert r.status_code == 200 and r.json() == [], r.text
    assert session.get(f"{dicom_url}/v2/changefeed", params={"endTme": "2000-01-01T00:00:00Z"}).status_code == 400


def test_bad_input_gets_the_right_codes(dicom_url, session, tmp_path):
    good = as_bytes(fresh("CT_small.dcm"))
    boundary = "e2eBoundary"

    def post(parts, path="studies"):
        body = b"".join(
            f"--{boundary}\r\nContent-Type: {ct}\r\n\r\n".encode() + data + b"\r\n" for ct, data in parts
        ) + f"--{boundary}--\r\n".encode()
        return session.post(
            f"{dicom_url}/{path}",
            data=body,
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                     "Accept": "application/dicom+json"},
        )

    def reasons(r):
        return [i["00081197"]["Value"][0] for i in r.json().get("00081198", {}).get("Value", [])]

    r = post([("application/dicom", good[: len(good) // 2])])
    assert r.status_code == 409 and reasons(r) == [272]
    r = post([("application/dicom", b"\x00" * 200)])
    assert r.status_code == 409 and reasons(r) == [272]
    r = post([("application/dicom", good)], path=f"studies/{generate_uid()}")
    assert r.status_code == 409 and reasons(r) == [43265]
    # dcmtk's dcmodify removes the SOP Instance UID: a validation failure.
    f = tmp_path / "nouid.dcm"
    f.write_bytes(good)
    import subprocess

    subprocess.run(["dcmodify", "-nb", "-ea", "(0008,0018)", str(f)], check=True, capture_output=True)
    r = post([("application/dicom", f.read_bytes())])
    assert r.status_code == 409 and reasons(r) == [43264], r.text
    r = post([("application/dicom", good), ("application/dicom", good)])
    assert r.status_code == 202 and reasons(r) == [45070], r.text
    r = post([("application/dicom", good)])
    assert r.status_code == 409 and reasons(r) == [45070]
    r = session.post(f"{dicom_url}/studies", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    ds = pydicom.dcmread(io.BytesIO(good))
    r = session.get(f"{dicom_url}/studies/{ds.StudyInstanceUID}", headers={"Accept": "image/png"})
    assert r.status_code == 406
    r = requests.get(f"{dicom_url}/studies")
    assert r.status_code == 401


def test_stored_studies_appear_in_fhir_and_lead_back_to_their_instances(client, dicom_url, session, hds_server):
    """DICOM cast: the ImagingStudy is written with the sync's own identity, found by a chained
    FHIR search on the patient's identifier, and what it names is retrieved by WADO."""
    import time

    from fhirpy import SyncFHIRClient

    ds = fresh("CT_small.dcm")
    ds.PatientID = f"e2e-{generate_uid()[-12:]}"
    ds.PatientName = "Cast^Test"
    data = as_bytes(ds)
    client.store_instances([pydicom.dcmread(io.BytesIO(data))])

    fhir = SyncFHIRClient(hds_server.fhir_url, authorization=f"Bearer {client_token(hds_server.endpoints)}")
    system = "urn:oid:1.2.3.4.5"  # examples/dicom-service.yaml's patientIdentifierSystem
    deadline = time.time() + 30
    studies = []
    while time.time() < deadline and not studies:
        studies = fhir.resources("ImagingStudy").search(**{"patient.identifier": f"{system}|{ds.PatientID}"}).fetch()
        if not studies:
            time.sleep(0.3)
    assert len(studies) == 1, "the sync wrote no ImagingStudy within 30 s"
    study = studies[0]
    assert study["identifier"][0]["value"] == f"urn:oid:{ds.StudyInstanceUID}"
    assert study["numberOfInstances"] == 1
    patient = fhir.reference(reference=study["subject"]["reference"]).to_resource()
    assert patient["identifier"][0] == {"system": system, "value": ds.PatientID}
    assert patient["name"][0]["family"] == "Cast"
    endpoint = fhir.reference(reference=study["endpoint"][0]["reference"]).to_resource()
    assert endpoint["address"] == dicom_url

    series = study["series"][0]
    instance = series["instance"][0]
    r = session.get(
        f"{endpoint['address']}/studies/{ds.StudyInstanceUID}/series/{series['uid']}/instances/{instance['uid']}",
        headers={"Accept": "application/dicom; transfer-syntax=*"},
    )
    assert r.status_code == 200 and r.content == data

    # A second instance updates the same ImagingStudy; deleting the study removes it.
    more = fresh("CT_small.dcm")
    more.StudyInstanceUID = ds.StudyInstanceUID
    more.PatientID = ds.PatientID
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(more)))])
    deadline = time.time() + 30
    while time.time() < deadline:
        found = fhir.resources("ImagingStudy").search(identifier=f"urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}").fetch()
        if found and found[0]["numberOfInstances"] == 2:
            break
        time.sleep(0.3)
    assert len(found) == 1 and found[0]["numberOfInstances"] == 2 and found[0]["id"] == study["id"]
    client.delete_study(ds.StudyInstanceUID)
    deadline = time.time() + 30
    while time.time() < deadline and found:
        found = fhir.resources("ImagingStudy").search(identifier=f"urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}").fetch()
        time.sleep(0.3)
    assert found == [], "the ImagingStudy of a deleted study is deleted"
    assert len(fhir.resources("Patient").search(identifier=f"{system}|{ds.PatientID}").fetch()) == 1


VIEWER = "http://localhost:3000"
DICOM_WITH_CORS = f"""\
apiVersion: hds.dev/v1alpha1
kind: DicomService
metadata: {{name: imaging, namespace: default}}
spec:
  workspaceRef: {{name: demo}}
  cors: {{origins: ["{VIEWER}"], headers: [authorization, accept], maxAge: 600}}
"""


def test_a_browser_viewer_is_let_in_by_the_services_cors(tmp_path):
    """spec.cors of a DicomService: the preflight a browser viewer sends before a QIDO with a
    token is answered without one, for its origin only, and answers expose what it reads."""
    (tmp_path / "workspace.yaml").write_text((EXAMPLES / "workspace.yaml").read_text())
    (tmp_path / "dicom.yaml").write_text(DICOM_WITH_CORS)
    with run_hds(tmp_path) as hds:
        (url,) = [s["url"] for s in hds.endpoints["services"] if s["kind"] == "DicomService"]
        ask = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        r = requests.options(f"{url}/v2/studies", headers={"Origin": VIEWER, **ask}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Origin"] == VIEWER
        assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
        r = requests.options(f"{url}/v2/studies", headers={"Origin": "http://evil.example", **ask}, timeout=10)
        assert "Access-Control-Allow-Origin" not in r.headers
        r = requests.get(
            f"{url}/v2/studies",
            headers={"Origin": VIEWER, "Authorization": f"Bearer {client_token(hds.endpoints)}"},
            timeout=10,
        )
        assert r.status_code in (200, 204), r.text
        assert r.headers["Access-Control-Allow-Origin"] == VIEWER
        exposed = r.headers["Access-Control-Expose-Headers"].lower()
        assert "content-location" in exposed and "warning" in exposed, exposed


def test_what_cannot_be_decoded_is_refused_before_the_answer_and_alternatives_are_served(
    client, dicom_url, session
):
    # One study: an instance that transcodes, and a 12-bit lossy JPEG that the codecs cannot decode.
    ct, jpg = fresh("CT_small.dcm"), fresh("JPGExtended.dcm")
    jpg.StudyInstanceUID = ct.StudyInstanceUID
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(d))) for d in (ct, jpg)])
    # A 406 the client reports, not a 200 that breaks off (ChunkedEncodingError).
    with pytest.raises(requests.HTTPError) as refused:
        client.retrieve_study(ct.StudyInstanceUID)
    assert refused.value.response.status_code == 406
    assert "cannot be decoded" in refused.value.response.text
    as_stored = client.retrieve_study(ct.StudyInstanceUID, media_types=(("application/dicom", "*"),))
    assert sorted(d.SOPInstanceUID for d in as_stored) == sorted([ct.SOPInstanceUID, jpg.SOPInstanceUID])
    # "JPEG 2000 lossless if you can, else as stored": the second is served.
    r = session.get(
        f"{dicom_url}/studies/{ct.StudyInstanceUID}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90; q=0.9, '
            'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5'
        },
    )
    assert r.status_code == 200
    assert r.content.count(b"Content-Type: application/dicom") == 2


def test_compressed_pixel_bulk_data_comes_decoded(client, dicom_url):
    rle = fresh("SC_rgb_rle_2frame.dcm")
    client.store_instances([pydicom.dcmread(io.BytesIO(as_bytes(rle)))])
    meta = client.retrieve_instance_metadata(rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID)
    frames = client.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
    assert len(frames) == 2
    reference = rle.pixel_array  # pydicom's own RLE decoder: (frames, rows, columns, samples)
    assert frames[0] == reference[0].tobytes()
    assert frames[1] == reference[1].tobytes()
