"""Drives Ferry's HubSpot emulator with hubspot-api-client, HubSpot's official Python client,
and checks what it reads back.

Usage: python3 hubspot_api_client.py BASE_URL PRIVATE_APP_TOKEN CLIENT_ID CLIENT_SECRET REFRESH_TOKEN

The private-app token drives the CRM; the OAuth app's refresh token is traded for an access token.

Exits non-zero on the first mismatch. The client deserializes every answer into the models
generated from HubSpot's OpenAPI documents, so a body that breaks them fails here too.
"""

import json
import sys

from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import OptionInput, PropertyCreate
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

BATCHES = 3  # 3 × 100 created by batch, plus one by basic_api: more than one page of 100


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    base, token, client_id, client_secret, refresh_token = sys.argv[1:6]
    base = base.rstrip("/")
    client = HubSpot(access_token=token, host=base)
    contacts = client.crm.contacts

    # properties
    props = client.crm.properties.core_api.get_all(object_type="contacts")
    by_name = {p.name: p for p in props.results}
    check({"email", "firstname", "lastname"} <= by_name.keys(), "the default properties are listed")
    check(by_name["email"].type == "string", f"email is a string ({by_name['email'].type})")
    check(by_name["createdate"].type == "datetime", "createdate is a datetime")

    # create and read one
    created = contacts.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "Ada@Example.org", "firstname": "Ada", "lastname": "Lovelace"}
        )
    )
    check(created.id.isdigit(), f"create gives a numeric id ({created.id})")
    check(created.properties["email"] == "ada@example.org", "the email comes back lowercased")
    got = contacts.basic_api.get_by_id(created.id, properties=["email", "firstname", "lastname"])
    check(got.properties["firstname"] == "Ada" and got.properties["lastname"] == "Lovelace", "get_by_id")
    check(got.created_at is not None and got.updated_at is not None, "createdAt/updatedAt parse")

    # error: a second contact with the same email is a 409 with HubSpot's error body
    try:
        contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "ada@example.org"})
        )
        check(False, "a duplicate email fails")
    except ApiException as e:
        body = json.loads(e.body)
        check(e.status == 409, f"a duplicate email is a 409 ApiException ({e.status})")
        check(body["category"] == "CONFLICT" and body["status"] == "error", f"error body: {body}")
        check(
            body["message"] == f"Contact already exists. Existing ID: {created.id}",
            "the message names the existing id",
        )
        check(bool(body.get("correlationId")), "the error carries a correlationId")

    # error: an unknown id is a 404 with an error body
    try:
        contacts.basic_api.get_by_id("1")
        check(False, "an unknown id fails")
    except ApiException as e:
        check(e.status == 404, f"an unknown id is a 404 ApiException ({e.status})")
        check(json.loads(e.body)["status"] == "error", "the 404 has an error body")

    # batch create, 100 at a time
    ids = []
    for b in range(BATCHES):
        inputs = [
            SimplePublicObjectInputForCreate(
                properties={
                    "email": f"batch{b}-{i}@example.org",
                    "firstname": "Batch",
                    "lastname": f"N{b * 100 + i:04d}",
                }
            )
            for i in range(100)
        ]
        res = contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
        )
        check(res.status == "COMPLETE" and len(res.results) == 100, f"batch create {b}")
        emails = {r.properties["email"] for r in res.results}
        check(emails == {f"batch{b}-{i}@example.org" for i in range(100)}, "every input came back")
        ids.extend(r.id for r in res.results)
    total = BATCHES * 100 + 1

    # batch update 40 of them
    to_update = ids[:40]
    res = contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=i, properties={"firstname": "Updated"})
                for i in to_update
            ]
        )
    )
    check(res.status == "COMPLETE" and len(res.results) == 40, "batch update of 40")
    check(all(r.properties["firstname"] == "Updated" for r in res.results), "batch update results")
    check({r.id for r in res.results} == set(to_update), "batch update touched those ids")

    # list every contact page by page
    seen = []
    after = None
    pages = 0
    while True:
        page = contacts.basic_api.get_page(limit=100, after=after, properties=["email", "firstname"])
        pages += 1
        seen.extend(page.results)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
        check(bool(after), "paging.next.after is set")
    check(pages == 4, f"get_page took 4 pages ({pages})")
    check(len(seen) == total and len({c.id for c in seen}) == total, f"get_page listed {total} contacts once")
    check(
        sum(1 for c in seen if c.properties["firstname"] == "Updated") == 40,
        "the listing shows the 40 updates",
    )

    # the SDK's own paging helper
    every = contacts.get_all(properties=["email"])
    check(len(every) == total and len({c.id for c in every}) == total, f"get_all reads {total} contacts")

    # search with a filter, paged, sorted
    found = []
    after = None
    while True:
        req = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="firstname", operator="EQ", value="Updated")])],
            properties=["email", "lastname"],
            sorts=["lastname"],
            limit=20,  # 2 pages + 2 more searches: 4, under the default 5 searches a second
            after=after,
        )
        res = contacts.search_api.do_search(public_object_search_request=req)
        check(res.total == 40, f"search total is 40 ({res.total})")
        found.extend(res.results)
        if res.paging is None or res.paging.next is None:
            break
        after = res.paging.next.after
    check({c.id for c in found} == set(to_update), "search found exactly the updated contacts")
    names = [c.properties["lastname"] for c in found]
    check(names == sorted(names), "search results are sorted by lastname")

    res = contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="ADA@example.org")])],
            properties=["email"],
        )
    )
    check(res.total == 1 and res.results[0].id == created.id, "search by email is case-insensitive")
    res = contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[Filter(property_name="email", operator="IN", values=["batch1-7@example.org", "ada@example.org"])]
                )
            ],
            properties=["email"],
        )
    )
    check(
        sorted(c.properties["email"] for c in res.results) == ["ada@example.org", "batch1-7@example.org"],
        "search with IN",
    )
    # a custom property: create, read by name, then write and read it on a contact
    prop = client.crm.properties.core_api.create(
        object_type="contacts",
        property_create=PropertyCreate(
            name="ferry_status",
            label="Ferry status",
            type="enumeration",
            field_type="select",
            group_name="contactinformation",
            options=[
                OptionInput(label="Active", value="active", display_order=0, hidden=False),
                OptionInput(label="Paused", value="paused", display_order=1, hidden=False),
            ],
        ),
    )
    check(prop.name == "ferry_status" and [o.value for o in prop.options] == ["active", "paused"], "property create")
    again = client.crm.properties.core_api.get_by_name(object_type="contacts", property_name="ferry_status")
    check(again.type == "enumeration" and again.field_type == "select", "property get_by_name")
    updated = contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"ferry_status": "paused"}))
    check(updated.properties["ferry_status"] == "paused", "basic update of the custom property")
    try:
        contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"ferry_status": "nope"}))
        check(False, "an unknown option fails")
    except ApiException as e:
        body = json.loads(e.body)
        check(e.status == 400 and body["category"] == "VALIDATION_ERROR", f"an unknown option is a 400: {body}")

    # batch read by email, batch upsert by email (one new, one existing), batch archive
    read = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            inputs=[SimplePublicObjectId(id="ada@example.org"), SimplePublicObjectId(id="batch0-0@example.org")],
            properties=["email", "ferry_status"],
            properties_with_history=[],
        )
    )
    check(sorted(r.properties["email"] for r in read.results) == ["ada@example.org", "batch0-0@example.org"], "batch read by email")
    upserted = contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(id_property="email", id="ada@example.org", properties={"lastname": "King"}),
                SimplePublicObjectBatchInputUpsert(id_property="email", id="new@example.org", properties={"lastname": "New"}),
            ]
        )
    )
    fresh = [r for r in upserted.results if r.new]
    known = [r for r in upserted.results if not r.new]
    check(len(fresh) == 1 and len(known) == 1, "upsert says which one is new")
    check(known[0].id == created.id and known[0].properties["lastname"] == "King", "upsert updated Ada in place")
    check(fresh[0].properties["email"] == "new@example.org", "upsert created the new email")
    new_id = fresh[0].id
    contacts.batch_api.archive(BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=new_id)]))
    try:
        contacts.basic_api.get_by_id(new_id)
        check(False, "an archived contact is gone")
    except ApiException as e:
        check(e.status == 404, "an archived contact reads as 404")
    archived = contacts.basic_api.get_by_id(new_id, archived=True)
    check(archived.archived is True and archived.archived_at is not None, "archived=true reads it with archivedAt")

    # OAuth: refresh, token information, the new token works, a bad refresh token is refused
    oauth = HubSpot(host=base).oauth
    tok = oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
    )
    check(tok.token_type == "bearer" and tok.expires_in == 1800, f"refresh grant: {tok.token_type}, {tok.expires_in}")
    info = oauth.access_tokens_api.get(tok.access_token)
    check("crm.objects.contacts.read" in info.scopes, f"access token scopes: {info.scopes}")
    check(info.token == tok.access_token and info.token_type == "access", "access token information")
    check(isinstance(info.hub_id, int) and isinstance(info.app_id, int), "hub_id and app_id are integers")
    page = HubSpot(access_token=tok.access_token, host=base).crm.contacts.basic_api.get_page(limit=1)
    check(len(page.results) == 1, "the refreshed access token reads contacts")
    try:
        oauth.tokens_api.create(
            grant_type="refresh_token",
            client_id=client_id,
            client_secret=client_secret,
            refresh_token="not-a-refresh-token",
        )
        check(False, "a bad refresh token fails")
    except OAuthApiException as e:
        body = json.loads(e.body)
        check(e.status == 400 and body["status"] == "BAD_REFRESH_TOKEN", f"a bad refresh token: {body}")
    print("hubspot: all checks passed")


if __name__ == "__main__":
    main()
