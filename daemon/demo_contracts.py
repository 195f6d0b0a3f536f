"""The demo's contract requests: the integration guide's Acme example and a few more.

Each is what a source system would POST to ``/v1/contracts``: a SpotDraft v2.1
create-contract payload with its own record id in ``external_metadata.id``, plus
``send_to_counterparties`` so it is sent as soon as it is created.
"""

from __future__ import annotations

from typing import Any


def _organisation(name: str, first: str, last: str, email: str, city: str) -> dict[str, Any]:
    return {
        "is_individual": False,
        "organization_type": "company",
        "organization_name": name,
        "poc_details": {"first_name": first, "last_name": last, "email": email},
        "organization_details": {
            "jurisdiction_iso_code": "US",
            "address": {"line_one": "1 Main Street", "city": city, "country_iso_code": "US"},
        },
    }


ACME: dict[str, Any] = {
    "contract_template_id": 1204,
    "contract_name": "Acme Master Services Agreement",
    "contract_data": {
        "agreement_date": "2026-04-20",
        "customer_name": "Acme Inc.",
        "billing_currency": {"type": "USD", "value": 12000},
        "subscription_term": {"type": "MONTHS", "value": 12, "days": 365},
        "auto_renewal": True,
        "notice_period_days": 30,
    },
    "counter_party_details": [
        {
            "is_individual": False,
            "organization_type": "company",
            "organization_name": "Acme Inc.",
            "poc_details": {
                "first_name": "Avery",
                "last_name": "Stone",
                "email": "legal@acme.example",
            },
            "organization_details": {
                "jurisdiction_iso_code": "US",
                "address": {
                    "line_one": "350 Fifth Avenue",
                    "city": "New York",
                    "state": "NY",
                    "country_iso_code": "US",
                    "zipcode": "10118",
                },
            },
        }
    ],
    "external_metadata": {
        "id": "hubspot-deal-10024",
        "integration_name": "HubSpot",
        "record_type": "Deal",
        "record_data": {"deal_stage": "contractsent", "owner_email": "owner@acme.example"},
    },
}


def demo_requests() -> list[dict[str, Any]]:
    """Five intake requests, each asking to be sent once created."""
    globex = {
        "contract_template_id": 1204,
        "contract_name": "Globex Master Services Agreement",
        "contract_data": {
            "agreement_date": "2026-05-02",
            "customer_name": "Globex Corporation",
            "billing_currency": {"type": "EUR", "value": 48000},
            "subscription_term": {"type": "YEARS", "value": 2, "days": 730},
        },
        "counter_party_details": [
            _organisation(
                "Globex Corporation", "Hank", "Scorpio", "legal@globex.example", "Cypress"
            )
        ],
        "external_metadata": {
            "id": "hubspot-deal-10031",
            "integration_name": "HubSpot",
            "record_type": "Deal",
        },
    }
    initech = {
        "contract_template_id": 1310,
        "contract_name": "Initech Mutual NDA",
        "contract_data": {
            "disclosure_purpose": "Evaluating a TPS reporting integration",
            "term_months": 24,
            "governing_law": "Delaware",
        },
        "counter_party_details": [
            _organisation("Initech LLC", "Bill", "Lumbergh", "bill@initech.example", "Austin")
        ],
        "external_metadata": {
            "id": "salesforce-opp-0061",
            "integration_name": "Salesforce",
            "record_type": "Opportunity",
        },
    }
    umbrella = {
        "contract_template_id": 1422,
        "contract_name": "Umbrella Order Form",
        "entity_reference_id": "ENT-US-01",
        "contract_data": {
            "order_date": "2026-06-01",
            "total_fee": {"type": "USD", "value": 7500},
            "billing_email": "ap@umbrella.example",
            "payment_terms": "NET_45",
        },
        "counter_party_details": [
            _organisation(
                "Umbrella Corp", "Alice", "Abernathy", "legal@umbrella.example", "Raccoon City"
            )
        ],
        "external_metadata": {
            "id": "netsuite-so-88213",
            "integration_name": "NetSuite",
            "record_type": "SalesOrder",
        },
    }
    contractor = {
        "contract_template_id": 1310,
        "contract_name": "Contractor NDA: Jordan Lee",
        "contract_data": {
            "disclosure_purpose": "Contract design work",
            "term_months": 12,
            "governing_law": "New York",
        },
        "counter_party_details": [
            {
                "is_individual": True,
                "poc_details": {
                    "first_name": "Jordan",
                    "last_name": "Lee",
                    "email": "jordan@lee.example",
                },
            }
        ],
        "external_metadata": {
            "id": "workday-req-4410",
            "integration_name": "Workday",
            "record_type": "Requisition",
        },
    }
    return [
        {**request, "send_to_counterparties": {}}
        for request in (ACME, globex, initech, umbrella, contractor)
    ]
