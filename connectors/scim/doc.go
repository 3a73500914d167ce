// Package scim is the connector for any SCIM 2.0 service provider (RFC 7643,
// RFC 7644): Atlassian, Egnyte, Sigma, Fivetran, Harness, Zapier, Twingate,
// ThousandEyes, ….
//
// A Client reads /ServiceProviderConfig and /Schemas once, lazily, and
// adapts: PATCH where supported, else a read-modify-write PUT; /Bulk for
// CreateAccounts where supported; RFC 7643 schemas assumed when /Schemas is
// missing. Every HTTP failure is classified once, in classify, into the
// connectors error types.
//
// # Attribute names
//
// Normalized names map to SCIM as follows (flatten reads them back the same
// way, so a re-sync of unchanged values finds nothing to write):
//
//	user_name, display_name, nick_name, title, user_type,   userName, displayName, …
//	locale, timezone, preferred_language, profile_url,      (any simple core attribute, snake_case)
//	active ("true"/"false"), external_id
//	given_name, family_name, middle_name, formatted_name,   name.givenName, name.familyName, …
//	honorific_prefix, honorific_suffix
//	email                                                   primary work email: emails[type eq "work"].value
//	emails.<type>, phone_numbers.<type>, ims.<type>,        the value of the item of that type
//	photos.<type>, roles.<type>, entitlements.<type>
//	addresses.<type>.<sub>                                  e.g. addresses.work.street_address
//	employee_number, cost_center, organization,             enterprise extension attributes
//	division, department
//	manager                                                 enterprise manager.value (the manager's SCIM id)
//	urn_<normalized schema URN>_<attribute>[_<sub>]         any extension attribute found in /Schemas, e.g.
//	                                                        urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_department
//
// A name that maps to nothing in the discovered schemas, a read-only
// attribute, or password (use CreateOptions.Password or SetPassword) is a
// permanent ScimMapping error naming it, before any request is sent.
//
// # Request budget
//
// After discovery: FindAccount is 1 GET; CreateAccount 1 POST (+1 GET to
// adopt on 409); UpdateAccount 1 PATCH (+1 GET when a multi-valued attribute
// changes), nothing when the change is empty; AddMember/RemoveMember 1
// PATCH; ReadAccount 1 GET; Deprovision 1 PATCH (active=false), then with
// RemoveGroups 1 PATCH per group, plus 1 GET when the PATCH answer is a 204
// or carries no groups; FindGroup 1 GET, every time (a cached ID would
// outlive a rename at the target).
//
// # Providers that differ from the RFC's friendliest reading
//
//   - Memberships come from the User's groups attribute when the provider
//     returns it (or declares it in /Schemas: absent then means none), else
//     from GET /Groups?filter=members.value eq "id"; a 400 invalidFilter
//     switches the Client, for its lifetime, to listing /Groups page by page
//     (advancing by what each page returned: count may be capped) and
//     matching the members here.
//   - A provider without /Groups (404 on the collection, or a non-JSON 404
//     on a group) makes group operations fail with the permanent
//     ScimUnsupported error, never ErrNotFound; a non-JSON 404 on /Users is
//     ScimEndpoint (a wrong base URL), not "the user is absent".
//   - Deprovision disables before it touches groups; a failed membership
//     read or removal is returned as "the account was disabled, but …" with
//     the failure's class kept.
//   - PATCH answered 204 with no body works everywhere; a non-JSON error
//     body (an HTML page) is summarized in one line (its title, or the first
//     120 characters of its text).
//
// internal/hostile reproduces each of these in front of the SCIMMY peer.
package scim
