"""Drives Ferry's EveryAction emulator with parsons' NGPVAN connector (the Python client
people use against VAN's API v4; EveryAction has no official one) and checks what it reads back.

Usage: python3 everyaction_parsons.py BASE_URL API_KEY

BASE_URL is the emulator's address; the client's fixed https://api.securevan.com/v4/ is
pointed at BASE_URL/v4/. Exits non-zero on the first mismatch.
"""

import datetime
import sys

import parsons.ngpvan.changed_entities as changed_entities
from parsons import VAN
from requests.exceptions import HTTPError

# parsons waits 10 s between polls of an export job; the emulator makes one poll say Pending.
changed_entities.RETRY_RATE = 0


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def client(base, key):
    van = VAN(api_key=key, db="EveryAction")
    uri = base.rstrip("/") + "/v4/"
    van.connection.uri = uri
    van.connection.api.uri = uri
    return van


def main():
    base, key = sys.argv[1:3]
    van = client(base, key)

    profile = van.connection.api_key_profile
    check(profile["hasMyCampaign"] and profile["databaseName"], f"api_key_profile: {profile}")

    since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).date().isoformat()

    # upsert: the first call stores a new person (201), the second matches it (302 to the person)
    stored = van.upsert_person(
        first_name="Ada", last_name="Lovelace", email="ada@example.org", phone="6175550101", phone_type="C"
    )
    check(stored["status"] == "UnmatchedStored" and stored["vanId"] > 0, f"upsert stores ({stored})")
    van_id = stored["vanId"]
    again = van.upsert_person(first_name="ADA", last_name="lovelace", email="Ada@Example.org")
    check(again["vanId"] == van_id, f"a second upsert matches the same person ({again.get('vanId')})")

    # find: by email alone, and a miss is a 404 with VAN's body
    found = van.find_person(email="ada@example.org")
    check(found["vanId"] == van_id, "find_person by email")
    try:
        van.find_person(first_name="Nobody", last_name="Here", email="nobody@example.org")
        check(False, "finding nobody fails")
    except HTTPError as e:
        check("Code: 404" in str(e), f"a miss is a 404 ({e})")
        check("Unmatched" in str(e), "the 404 says Unmatched")

    # read with expansions
    person = van.get_person(van_id, expand_fields=["emails", "phones"])
    check(person["firstName"] == "Ada" and person["lastName"] == "Lovelace", "get_person names")
    check([e["email"] for e in person["emails"]] == ["ada@example.org"], f"emails: {person['emails']}")
    check(
        [p["phoneNumber"] for p in person["phones"]] == ["6175550101"],
        f"phones: {person['phones']}",
    )
    check(person["addresses"] is None, "an unexpanded collection is null")
    everything = van.get_person(van_id)  # parsons expands every collection by default
    check(everything["vanId"] == van_id and everything["addresses"] == [], "get_person with every expansion")

    # update by vanId: a second email is appended, the names change
    van.update_person(van_id, first_name="Augusta Ada", last_name="Lovelace", email="ada@math.example.org")
    person = van.get_person(van_id, expand_fields=["emails"])
    check(person["firstName"] == "Augusta Ada", "update_person changed the first name")
    check(
        sorted(e["email"] for e in person["emails"]) == ["ada@example.org", "ada@math.example.org"],
        f"update_person appended an email: {person['emails']}",
    )

    # more people, then the changed-entity export sees them all
    ids = {van_id}
    for i in range(5):
        r = van.upsert_person(first_name=f"Person{i}", last_name="Export", email=f"p{i}@example.org")
        check(r["status"] == "UnmatchedStored", f"stored person {i}")
        ids.add(r["vanId"])
    resources = van.get_changed_entity_resources()
    check("Contacts" in resources, f"Contacts is a changed-entity resource ({resources})")
    fields = {f["fieldName"]: f for f in van.get_changed_entity_resource_fields("Contacts")}
    check(fields["VanID"]["isCoreField"] and not fields["FirstName"]["isCoreField"], "Contacts fields: VanID is core")
    table = van.get_changed_entities("Contacts", since, requested_fields=["FirstName", "LastName"])
    rows = table.to_dicts()
    check({int(r["VanID"]) for r in rows} == ids, f"the export lists the 6 people ({len(rows)} rows)")
    ada = next(r for r in rows if int(r["VanID"]) == van_id)
    check(ada["FirstName"] == "Augusta Ada" and ada["LastName"] == "Lovelace", "the export row's names")

    # a wrong key is refused with VAN's 401 body
    try:
        client(base, key + "-wrong").find_person(email="ada@example.org")
        check(False, "a wrong key fails")
    except HTTPError as e:
        check("Code: 401" in str(e) and "UNAUTHORIZED" in str(e), f"a wrong key is a 401 ({e})")
    print("everyaction: all checks passed")


if __name__ == "__main__":
    main()
