"""Drives Ferry's Salesforce emulator with simple-salesforce, the Python client people use
against the real service, and checks what it reads back.

Usage: python3 salesforce_simple_salesforce.py BASE_URL CA_FILE CONSUMER_KEY CONSUMER_SECRET USERNAME JWT_KEY_FILE

BASE_URL is the emulator's https:// address (simple-salesforce only speaks https) and CA_FILE
the certificate it serves; JWT_KEY_FILE is the private key of the certificate the emulator's
connected app has, for the JWT bearer flow as USERNAME. Exits non-zero on the first mismatch.
"""

import base64
import csv
import datetime
import hashlib
import io
import os
import secrets
import sys
import tempfile
import urllib.parse

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

ROWS = 2_345  # more than one 2,000-row page, so query_all has to follow nextRecordsUrl
# simple-salesforce sleeps `wait` seconds (5 by default) before it first polls a Bulk API 2.0
# job, then a little longer between polls; the emulator's jobs are done by their second poll.
BULK_WAIT = 0.2


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def login(session, base, client_id, client_secret):
    """The web-server flow with PKCE, as a connected app would run it: the consent form's
    answer gives a code, the token endpoint trades it for a session id and instance_url."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    redirect_uri = "http://localhost/callback"
    consent = session.post(
        f"{base}/services/oauth2/authorize",
        data={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "decision": "allow",
        },
        allow_redirects=False,
    )
    check(consent.status_code == 302, f"consent redirects ({consent.status_code})")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(consent.headers["Location"]).query)
    check(query.get("state") == ["st-1"], "the redirect carries the state back")
    token = session.post(
        f"{base}/services/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    check(token.status_code == 200, f"token exchange answers 200 ({token.text})")
    grant = token.json()
    check(grant["token_type"] == "Bearer", "token_type is Bearer")
    check(grant["instance_url"].startswith("https://"), "instance_url is https")
    return grant


class ToEmulator(HTTPAdapter):
    """Sends https://login.salesforce.com/… to the emulator, as a hosts-file entry would:
    simple-salesforce's JWT flow always posts to https://{domain}.salesforce.com."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        request.url = request.url.replace("https://login.salesforce.com", self.base, 1)
        return super().send(request, **kwargs)


def jwt_login(session, base, client_id, username, key_file):
    """simple-salesforce's own JWT bearer flow (its claims, its signing, its token request)."""
    session.mount("https://login.salesforce.com", ToEmulator(base))
    with open(key_file) as f:
        key = f.read()
    sf = Salesforce(
        username=username, consumer_key=client_id, privatekey=key, session=session, version="62.0"
    )
    check(sf.sf_instance == base.split("://", 1)[1], f"the JWT flow's instance is the emulator ({sf.sf_instance})")
    check(sf.query("SELECT Id FROM Contact")["totalSize"] == 0, "the JWT session queries")
    try:
        Salesforce(
            username="someone@else.test", consumer_key=client_id, privatekey=key, session=session, version="62.0"
        )
        check(False, "a user the app was not approved for fails")
    except SalesforceAuthenticationFailed as e:
        check(e.code == "invalid_grant", f"an unapproved user is SalesforceAuthenticationFailed ({e})")


def main():
    base, ca_file, client_id, client_secret, username, key_file = sys.argv[1:7]
    # requests lets REQUESTS_CA_BUNDLE (set on many machines) override Session.verify.
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    session = requests.Session()
    session.verify = ca_file
    jwt_login(session, base.rstrip("/"), client_id, username, key_file)
    grant = login(session, base.rstrip("/"), client_id, client_secret)
    sf = Salesforce(
        instance_url=grant["instance_url"],
        session_id=grant["access_token"],
        session=session,
        version="62.0",
    )

    # describe
    describe = sf.Contact.describe()
    check(describe["name"] == "Contact", "describe names Contact")
    fields = {f["name"]: f for f in describe["fields"]}
    check(not fields["LastName"]["nillable"], "LastName is required")
    check(fields["Ferry_Id__c"]["externalId"], "Ferry_Id__c is an external id")
    check(fields["Email"]["type"] == "email", "Email is of type email")

    # create / read / update
    created = sf.Contact.create(
        {"LastName": "Lovelace", "Email": "ada@example.org", "Ferry_Id__c": "F-1"}
    )
    check(created["success"] and created["id"].startswith("003"), f"create: {created}")
    cid = created["id"]
    got = sf.Contact.get(cid)
    check(got["LastName"] == "Lovelace" and got["Email"] == "ada@example.org", "get reads it back")
    check(got["attributes"]["type"] == "Contact", "the record carries its attributes")
    status = sf.Contact.update(cid, {"FirstName": "Ada"})
    check(status == 204, f"update answers 204 ({status})")
    check(sf.Contact.get(cid)["FirstName"] == "Ada", "update took effect")

    # upsert by external id: first creates, then updates the same record
    status = sf.Contact.upsert("Ferry_Id__c/F-2", {"LastName": "Hopper"})
    check(status == 201, f"upsert of a new external id creates (201, got {status})")
    status = sf.Contact.upsert("Ferry_Id__c/F-2", {"FirstName": "Grace"})
    # 200 with a body since API v46.0 (204 before): the REST API guide's upsert page.
    check(status == 200, f"upsert of a known external id updates (200, got {status})")
    by_ext = sf.Contact.get_by_custom_id("Ferry_Id__c", "F-2")
    check(
        by_ext["FirstName"] == "Grace" and by_ext["LastName"] == "Hopper",
        "get_by_custom_id reads the upserted record",
    )

    # an external id that is not unique: two matches are a 300, SalesforceMoreThanOneRecord
    for name in ("Twin1", "Twin2"):
        sf.Contact.create({"LastName": name, "Student_Id__c": "S-42"})
    try:
        sf.Contact.upsert("Student_Id__c/S-42", {"FirstName": "Which"})
        check(False, "an upsert matching two records fails")
    except SalesforceMoreThanOneRecord as e:
        check(e.status == 300, "two matches are SalesforceMoreThanOneRecord (300)")
    twins = sf.query("SELECT Id, FirstName FROM Contact WHERE Student_Id__c = 'S-42'")
    check(twins["totalSize"] == 2 and all(r["FirstName"] is None for r in twins["records"]), "nothing was written")

    # a missing record
    try:
        sf.Contact.get("003000000000000AAA")
        check(False, "reading an unknown id fails")
    except SalesforceResourceNotFound as e:
        check(e.status == 404, "an unknown id is SalesforceResourceNotFound (404)")

    # Bulk API 2.0 insert
    records = [
        {"LastName": f"Bulk{i:05d}", "Email": f"bulk{i}@example.org", "Ferry_Id__c": f"B-{i}"}
        for i in range(ROWS)
    ]
    results = sf.bulk2.Contact.insert(records=records, wait=BULK_WAIT)
    check(len(results) == 1, f"one ingest job ({results})")
    check(results[0]["numberRecordsProcessed"] == ROWS, f"bulk2 processed {ROWS} ({results})")
    check(results[0]["numberRecordsFailed"] == 0, "bulk2 insert failed none")
    ok_csv = sf.bulk2.Contact.get_successful_records(results[0]["job_id"])
    ok_rows = list(csv.DictReader(io.StringIO(ok_csv)))
    check(len(ok_rows) == ROWS, "successfulResults has a row per record")
    check(all(r["sf__Created"] == "true" for r in ok_rows), "every row says sf__Created=true")
    total = ROWS + 4  # Ada, Grace and the twins

    # query: the first page and then query_more by nextRecordsUrl
    soql = "SELECT Id, LastName, Ferry_Id__c FROM Contact"
    first = sf.query(soql)
    check(first["totalSize"] == total, f"totalSize is {total} ({first['totalSize']})")
    check(not first["done"] and len(first["records"]) == 2000, "the first page has 2,000 rows")
    more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    check(more["done"] and len(more["records"]) == total - 2000, "query_more gets the rest")
    everything = sf.query_all(soql)
    check(everything["totalSize"] == total, "query_all's totalSize")
    ids = {r["Id"] for r in everything["records"]}
    check(len(everything["records"]) == total and len(ids) == total, "query_all: every row once")
    hopper = sf.query("SELECT Id, FirstName FROM Contact WHERE Ferry_Id__c = 'F-2'")
    check(
        hopper["totalSize"] == 1 and hopper["records"][0]["FirstName"] == "Grace",
        "a WHERE on the external id finds the upserted record",
    )

    # delete, then queryAll still sees it
    status = sf.Contact.delete(cid)
    check(status == 204, f"delete answers 204 ({status})")
    live = sf.query("SELECT Id FROM Contact WHERE Ferry_Id__c = 'F-1'")
    check(live["totalSize"] == 0, "a deleted record leaves query")
    dead = sf.query_all("SELECT Id, IsDeleted FROM Contact WHERE Ferry_Id__c = 'F-1'", include_deleted=True)
    check(
        dead["totalSize"] == 1 and dead["records"][0]["IsDeleted"] is True,
        "queryAll includes the deleted record",
    )

    # updated / deleted: Salesforce covers whole minutes up to the current one, so move the
    # emulator's clock (a test-only endpoint, not Salesforce's) past this minute first.
    moved = session.post(f"{base.rstrip('/')}/__emulator/clock/advance", json={"ms": 120_000})
    check(moved.status_code == 204, "the emulator's clock moved two minutes")
    now = datetime.datetime.now(datetime.timezone.utc)
    window = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    updated = sf.Contact.updated(*window)
    check(by_ext["Id"] in updated["ids"] and cid not in updated["ids"], "updated lists live changed ids")
    check(len(updated["ids"]) == total - 1, f"updated lists {total - 1} ids ({len(updated['ids'])})")
    deleted = sf.Contact.deleted(*window)
    check([d["id"] for d in deleted["deletedRecords"]] == [cid], f"deleted lists the deleted one ({deleted})")

    # describeGlobal and limits
    names = {o["name"] for o in sf.describe()["sobjects"]}
    check("Contact" in names, "describeGlobal lists Contact")
    limits = sf.limits()
    check(limits["DailyApiRequests"]["Max"] == 100_000, f"limits: {limits['DailyApiRequests']}")

    # Bulk API 2.0 query, in pages of 1,000
    pages = list(
        sf.bulk2.Contact.query("SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Bulk%'", max_records=1000, wait=BULK_WAIT)
    )
    rows = [r for page in pages for r in csv.DictReader(io.StringIO(page))]
    check(len(pages) == 3, f"bulk2 query came in 3 pages ({len(pages)})")
    check(len(rows) == ROWS, f"bulk2 query read {ROWS} rows ({len(rows)})")
    check(rows[0]["LastName"].startswith("Bulk"), "bulk2 query rows carry LastName")

    # Bulk API 2.0 upsert by external id: one update, one insert, one bad email
    upsert = [
        {"Ferry_Id__c": "B-0", "FirstName": "Upserted", "LastName": "Bulk00000", "Email": "bulk0@example.org"},
        {"Ferry_Id__c": "N-1", "FirstName": "New", "LastName": "Person", "Email": "new1@example.org"},
        {"Ferry_Id__c": "N-2", "FirstName": "Bad", "LastName": "Email", "Email": "not-an-email"},
    ]
    results = sf.bulk2.Contact.upsert(records=upsert, external_id_field="Ferry_Id__c", wait=BULK_WAIT)
    check(results[0]["numberRecordsProcessed"] == 3, f"bulk2 upsert processed 3 ({results})")
    check(results[0]["numberRecordsFailed"] == 1, "bulk2 upsert failed one")
    job = results[0]["job_id"]
    ok_rows = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(job))))
    created_by_ext = {r["Ferry_Id__c"]: r["sf__Created"] for r in ok_rows}
    check(created_by_ext == {"B-0": "false", "N-1": "true"}, f"sf__Created per row: {created_by_ext}")
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(job))))
    check(len(failed) == 1 and failed[0]["Ferry_Id__c"] == "N-2", "failedResults has the bad row")
    check(failed[0]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:"), f"sf__Error: {failed[0]['sf__Error']}")
    b0 = sf.Contact.get_by_custom_id("Ferry_Id__c", "B-0")
    check(b0["FirstName"] == "Upserted", "the bulk upsert updated B-0")

    # Bulk API 2.0 delete by Id (to the recycle bin)
    n1 = sf.Contact.get_by_custom_id("Ferry_Id__c", "N-1")["Id"]
    results = sf.bulk2.Contact.delete(records=[{"Id": n1}], wait=BULK_WAIT)
    check(results[0]["numberRecordsProcessed"] == 1 and results[0]["numberRecordsFailed"] == 0, f"bulk2 delete ({results})")
    gone = sf.query("SELECT Id FROM Contact WHERE Ferry_Id__c = 'N-1'")
    check(gone["totalSize"] == 0, "the bulk-deleted record leaves query")

    # Bulk API 2.0 update by Id, and a queryAll job streamed to files
    b1 = sf.Contact.get_by_custom_id("Ferry_Id__c", "B-1")["Id"]
    results = sf.bulk2.Contact.update(records=[{"Id": b1, "FirstName": "BulkUpdated"}], wait=BULK_WAIT)
    check(results[0]["numberRecordsProcessed"] == 1 and results[0]["numberRecordsFailed"] == 0, "bulk2 update")
    check(sf.Contact.get(b1)["FirstName"] == "BulkUpdated", "the bulk update took effect")
    with tempfile.TemporaryDirectory() as folder:
        files = sf.bulk2.Contact.download(
            "SELECT Id, Ferry_Id__c FROM Contact WHERE LastName LIKE 'Bulk%'", path=folder, max_records=1000, wait=BULK_WAIT
        )
        check(len(files) == 3, f"download wrote 3 files ({len(files)})")
        check(sum(f["number_of_records"] for f in files) == ROWS, "download's record counts add up")
        downloaded = []
        for f in files:
            with open(f["file"], newline="") as fh:
                downloaded.extend(csv.DictReader(fh))
        check(len({r["Id"] for r in downloaded}) == ROWS, "the files hold every row once")
    everyone = [r for page in sf.bulk2.Contact.query_all("SELECT Id FROM Contact", wait=BULK_WAIT) for r in csv.DictReader(io.StringIO(page))]
    check(len(everyone) == total + 1, f"a queryAll job sees the deleted rows too ({len(everyone)})")

    # sObject Collections through the client's generic restful(): create two, one fails
    collection = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": "Coll", "Ferry_Id__c": "C-1"},
                {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"},
            ],
        },
    )
    check(collection[0]["success"] and not collection[1]["success"], f"collection results in order: {collection}")
    check(collection[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING", "a collection error uses statusCode")

    # basic info (GET sobjects/Contact/)
    info = sf.Contact.metadata()
    check(info["objectDescribe"]["name"] == "Contact", "metadata names Contact")

    # a malformed SOQL query
    try:
        sf.query("SELECT FROM Contact")
        check(False, "a malformed query fails")
    except SalesforceMalformedRequest as e:
        check(e.status == 400, "a malformed query is SalesforceMalformedRequest (400)")
        check(e.content[0]["errorCode"] == "MALFORMED_QUERY", f"errorCode MALFORMED_QUERY ({e.content})")

    # Sforce-Limit-Info is parsed by the client
    usage = sf.api_usage.get("api-usage")
    check(usage is not None and usage.used > 0 and usage.total == 100_000, f"api_usage: {usage}")

    # an expired session (the emulator's test-only switch) is SalesforceExpiredSession
    expired = session.post(f"{base.rstrip('/')}/__emulator/sessions/expire")
    check(expired.status_code == 204, "the emulator expired every session")
    try:
        sf.query("SELECT Id FROM Contact LIMIT 1")
        check(False, "an expired session fails")
    except SalesforceExpiredSession as e:
        check(e.status == 401, "an expired session is SalesforceExpiredSession (401)")
        check(e.content[0]["errorCode"] == "INVALID_SESSION_ID", f"errorCode INVALID_SESSION_ID ({e.content})")
    print("salesforce: all checks passed")


if __name__ == "__main__":
    main()
