# The shipped default rules (policies/cedar/*.cedar) and the licence terms
# (policies/src/licence.rs) written in Rego, for the benchmark comparison with
# OPA and regorus only: datamesh decides with Cedar. Same ids, same outcome
# for the same request; policies/tests/rego_parity.rs checks that.
#
# input: {action, ownerApproved, principal, resource, context, licence, request}
# as built by policies/tests/support/rego_input.rs. Output: data.datamesh.decision
# = {"outcome": "Allow" | "NeedsApproval" | "Deny", "reasons": [ids, sorted]}.
package datamesh

use_actions := {"Read", "Subscribe"}

manage_actions := {"Read", "Subscribe", "Approve"}

identifier_purposes := {"direct-care", "safeguarding", "record-linkage", "fraud-prevention"}

# --- permits (classification.cedar, ownership.cedar); `approved` is ownerApproved

permit_fires("open-read", _) if {
	input.action in use_actions
	input.resource.classification == "open"
}

permit_fires("internal-same-sector", _) if {
	input.action in use_actions
	input.resource.classification == "internal"
	input.principal.sector == input.resource.domainSector
}

permit_fires("internal-owner-approved", approved) if {
	input.action in use_actions
	input.resource.classification == "internal"
	approved
}

permit_fires("restricted-owner-approved", approved) if {
	input.action in use_actions
	input.resource.classification in {"restricted", "personal"}
	approved
}

permit_fires("owner-uses-own", _) if {
	input.action in use_actions
	input.resource.domain == input.principal.name
}

permit_fires("owner-publishes", _) if {
	input.action == "Publish"
	input.resource.domain == input.principal.name
}

permit_fires("owner-approves", _) if {
	input.action == "Approve"
	input.resource.domain == input.principal.name
}

permit_ids := [
	"open-read", "internal-same-sector", "internal-owner-approved",
	"restricted-owner-approved", "owner-uses-own", "owner-publishes", "owner-approves",
]

permits(approved) := {id | some id in permit_ids; permit_fires(id, approved)}

# --- forbids (lifecycle.cedar, personal.cedar, residency.cedar); none reads ownerApproved

forbids contains "retired-never" if {
	input.action in manage_actions
	input.resource.lifecycle == "retired"
}

forbids contains "draft-never" if {
	input.action in manage_actions
	input.resource.lifecycle == "draft"
}

forbids contains "deprecated-no-new-agreements" if {
	input.action in use_actions
	input.resource.lifecycle == "deprecated"
	not input.context.existingAgreement
}

forbids contains "personal-data-accredited" if {
	input.action in use_actions
	input.resource.personalData
	not "dpia-process" in input.principal.accreditations
}

forbids contains "personal-data-purpose" if {
	input.action in use_actions
	input.resource.personalData
	not input.context.purpose in input.licence.permittedPurposes
}

forbids contains "personal-data-dpia" if {
	input.action in use_actions
	input.resource.personalData
	not input.context.dpiaReferenceGiven
}

forbids contains "identifier-fields-purpose" if {
	input.action in use_actions
	"identifier" in input.context.fieldClassifications
	not input.context.purpose in identifier_purposes
}

forbids contains "data-residency" if {
	input.action in use_actions
	input.resource.region != null
	restricted_or_personal
	input.principal.jurisdiction != input.resource.region
	input.principal.country != input.resource.region
}

restricted_or_personal if input.resource.personalData

restricted_or_personal if input.resource.classification in {"restricted", "personal"}

# --- Cedar's answer: permitted and not forbidden, first without approval, then with

allowed(approved) if {
	count(forbids) == 0
	count(permits(approved)) > 0
}

cedar := {"outcome": "Allow", "reasons": permits(input.ownerApproved)} if {
	allowed(input.ownerApproved)
} else := {"outcome": "NeedsApproval", "reasons": permits(true)} if {
	not input.ownerApproved
	allowed(true)
} else := {"outcome": "Deny", "reasons": forbids} if {
	count(forbids) > 0
} else := {"outcome": "Deny", "reasons": {"default-deny"}}

# --- licence terms (licence.rs): each failing term denies, named after its field

failed_terms contains "name" if input.request.licenceName != input.licence.name

failed_terms contains "version" if {
	input.request.licenceName == input.licence.name
	input.request.licenceVersion != input.licence.version
}

failed_terms contains "permittedPurposes" if {
	not "any" in input.licence.permittedPurposes
	not input.context.purpose in input.licence.permittedPurposes
}

failed_terms contains "commercialUse" if {
	input.request.commercialUse
	not input.licence.commercialUse
}

failed_terms contains "redistribution" if {
	input.request.redistribution
	not input.licence.redistribution
}

failed_terms contains "maxDurationDays" if {
	input.licence.maxDurationDays != null
	input.request.askedDays > input.licence.maxDurationDays
}

failed_terms contains "jurisdictions" if {
	count(input.licence.jurisdictions) > 0
	not input.principal.jurisdiction in input.licence.jurisdictions
	not input.principal.country in input.licence.jurisdictions
}

needs_agreement if {
	input.licence.requiresAgreement
	not input.ownerApproved
}

# --- the decision: Cedar and the licence together, as decide() combines them

cedar_reasons(outcome) := cedar.reasons if cedar.outcome == outcome

cedar_reasons(outcome) := set() if cedar.outcome != outcome

decision := {"outcome": "Deny", "reasons": sort(cedar_reasons("Deny") | failed_terms)} if {
	deny
} else := {"outcome": "NeedsApproval", "reasons": sort(cedar_reasons("NeedsApproval") | agreement_term)} if {
	needs_approval
} else := {"outcome": "Allow", "reasons": sort(cedar.reasons)}

deny if cedar.outcome == "Deny"

deny if count(failed_terms) > 0

needs_approval if cedar.outcome == "NeedsApproval"

needs_approval if needs_agreement

agreement_term := {"requiresAgreement"} if needs_agreement else := set()
