// SCIM 2.0 test peer for jml: the real SCIMMY + scimmy-routers stack over an
// in-memory store indexed by id and lower-cased userName, so lookups stay
// O(1) at tens of thousands of users.
//
//   node server.js --port 0 --token T [--patch=false] [--bulk=false] [--seed-users N]
//
// Prints "scim peer ready on http://127.0.0.1:PORT/scim/v2" once listening.
// Requests under /scim/v2 are counted per method; GET /_peer/stats reads the
// counters, POST /_peer/reset zeroes them (both need the bearer token and are
// not counted themselves).
import crypto from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => {
    const m = a.match(/^--([^=]+)(?:=(.*))?$/);
    if (!m) return [];
    return [m[1], m[2] ?? (all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "true")];
}).filter((kv) => kv.length));
const port = Number(args.port ?? process.env.PORT ?? 0);
const token = args.token ?? process.env.SCIM_TOKEN ?? "";
if (!token) {
    console.error("scim peer: --token or SCIM_TOKEN is required");
    process.exit(2);
}
const patchSupported = (args.patch ?? "true") !== "false";
const bulkSupported = (args.bulk ?? "true") !== "false";

const { Types, Schemas, Resources } = SCIMMY;
const notFound = (id) => new Types.Error(404, null, `Resource ${id} not found`);

// A vendor extension so clients can prove they map custom attributes
// through /Schemas.
const vendor = new Types.SchemaDefinition("MyVendorUser", "urn:ietf:params:scim:schemas:extension:myvendor:1.0:User",
    "Vendor-specific user attributes", [
        new Types.Attribute("string", "customField"),
        new Types.Attribute("string", "badgeColor", { canonicalValues: ["red", "green", "blue"] }),
    ]);

// ---- store ---------------------------------------------------------------

const users = new Map();          // id → stored user (plain JSON)
const userByName = new Map();     // lower(userName) → id
const passwords = new Map();      // id → sha256(password), so tests can prove a password was set
const groups = new Map();         // id → stored group
const groupByName = new Map();    // lower(displayName) → id
const groupsOfUser = new Map();   // user id → Set(group id)
let nextID = 1;
const newID = () => `${(nextID++).toString(36).padStart(4, "0")}-${crypto.randomBytes(6).toString("hex")}`;

const plain = (instance) => JSON.parse(JSON.stringify(instance));
const lower = (s) => String(s ?? "").toLowerCase();

// SCIMMY keeps escapes of filter string values verbatim; undo them so the
// index sees the value the client meant.
const unescape = (v) => {
    if (typeof v !== "string" || !v.includes("\\")) return v;
    try { return JSON.parse(`"${v}"`); } catch { return v; }
};

// Filter.match throws when a stored item lacks a filtered sub-attribute
// (SCIMMY 1.3.5), so match one item at a time and treat a throw as no match.
const matches = (filter, item) => {
    try { return filter.match([item]).length === 1; } catch { return false; }
};

// Candidates for a filter: exact index hits for `userName eq` / `id eq`
// (userName case-insensitively, as RFC 7643 says), else a scan.
function select(filter, all, byName, nameAttr) {
    if (!filter) return [...all.values()];
    if (filter.length === 1) {
        const entries = Object.entries(filter[0]);
        if (entries.length === 1) {
            const [attr, expr] = entries[0];
            if (Array.isArray(expr) && expr[0] === "eq" && typeof expr[1] === "string") {
                const value = unescape(expr[1]);
                if (lower(attr) === lower(nameAttr)) {
                    const id = byName.get(lower(value));
                    return id ? [all.get(id)] : [];
                }
                if (lower(attr) === "id") return all.has(value) ? [all.get(value)] : [];
            }
            // Filter.match does not resolve URN-qualified attribute paths
            // (urn:…:User:employeeNumber): compare those here.
            if (attr.includes(":") && Array.isArray(expr) && expr[0] === "eq") {
                const cut = attr.lastIndexOf(":");
                const [name, sub] = attr.slice(cut + 1).split(".");
                const want = typeof expr[1] === "string" ? unescape(expr[1]) : expr[1];
                return [...all.values()].filter((u) => {
                    const ext = Object.entries(u).find(([k]) => lower(k) === lower(attr.slice(0, cut)))?.[1];
                    const v = sub ? ext?.[name]?.[sub] : ext?.[name];
                    return v === want;
                });
            }
            // emails.value is caseExact=false too (RFC 7643 §4.1.2);
            // Filter.match compares case-sensitively.
            const sub = expr?.value;
            if (lower(attr) === "emails" && Array.isArray(sub) && sub[0] === "eq" && typeof sub[1] === "string") {
                const want = lower(unescape(sub[1]));
                return [...all.values()].filter((u) => (u.emails ?? []).some((e) => lower(e.value) === want));
            }
        }
    }
    const out = [];
    for (const item of all.values()) if (matches(filter, item)) out.push(item);
    return out;
}

// page returns what SCIMMY's ListResponse needs to produce one page without
// building a schema instance per stored item.
function page(resource, items) {
    const c = resource.constraints ?? {};
    if (c.sortBy) {
        const key = c.sortBy.split(".");
        const get = (o) => key.reduce((v, k) => (Array.isArray(v) ? (v.find((x) => x.primary) ?? v[0]) : v)?.[k], o);
        items.sort((a, b) => String(get(a) ?? "\uffff").localeCompare(String(get(b) ?? "\uffff")));
        if (c.sortOrder === "descending") items.reverse();
    }
    const start = Math.max(c.startIndex ?? 1, 1), count = c.count ?? 100;
    resource.constraints = { ...c, count, startIndex: start, totalResults: items.length };
    const end = Math.min(start - 1 + count, items.length);
    const slice = items.slice(start - 1, end);
    // ListResponse re-slices a page when it holds at least startIndex items
    // and is not the last one; hand it the leading items too in that case.
    if (slice.length >= start && items.length !== slice.length + start - 1) return items.slice(0, end);
    return slice;
}

const withGroups = (u) => {
    const ids = groupsOfUser.get(u.id);
    if (!ids?.size) return u;
    return { ...u, groups: [...ids].map((g) => ({ value: g, display: groups.get(g)?.displayName, type: "direct" })) };
};

function linkMembers(groupID, before, after) {
    for (const m of before) groupsOfUser.get(m.value)?.delete(groupID);
    for (const m of after) {
        if (!groupsOfUser.has(m.value)) groupsOfUser.set(m.value, new Set());
        groupsOfUser.get(m.value).add(groupID);
    }
}

// ---- resources -----------------------------------------------------------

Resources.declare(Resources.User.extend(Schemas.EnterpriseUser, false).extend(vendor, false))
    .ingress((resource, instance) => {
        const now = new Date().toISOString();
        const data = plain(instance);
        delete data.groups; // read-only: derived from group membership
        const holder = userByName.get(lower(data.userName));
        if (holder && holder !== resource.id)
            throw new Types.Error(409, "uniqueness", `userName ${JSON.stringify(data.userName)} is already taken`);
        let stored;
        if (resource.id) {
            const old = users.get(resource.id);
            if (!old) throw notFound(resource.id);
            userByName.delete(lower(old.userName));
            stored = { ...data, id: old.id, meta: { ...old.meta, lastModified: now } };
        } else {
            stored = { ...data, id: newID(), meta: { resourceType: "User", created: now, lastModified: now } };
        }
        users.set(stored.id, stored);
        userByName.set(lower(stored.userName), stored.id);
        if (typeof instance.password === "string" && instance.password !== "")
            passwords.set(stored.id, crypto.createHash("sha256").update(instance.password).digest("hex"));
        return withGroups(stored);
    })
    .egress((resource) => {
        if (resource.id) {
            const u = users.get(resource.id);
            if (!u) throw notFound(resource.id);
            return withGroups(u);
        }
        return page(resource, select(resource.filter, users, userByName, "userName")).map(withGroups);
    })
    .degress((resource) => {
        const u = users.get(resource.id);
        if (!u) throw notFound(resource.id);
        users.delete(u.id);
        userByName.delete(lower(u.userName));
        passwords.delete(u.id);
        // A deleted user leaves every group, as real directories do.
        for (const g of groupsOfUser.get(u.id) ?? []) {
            const group = groups.get(g);
            if (group) group.members = (group.members ?? []).filter((m) => m.value !== u.id);
        }
        groupsOfUser.delete(u.id);
    });

Resources.declare(Resources.Group)
    .ingress((resource, instance) => {
        const now = new Date().toISOString();
        const data = plain(instance);
        const holder = groupByName.get(lower(data.displayName));
        if (holder && holder !== resource.id)
            throw new Types.Error(409, "uniqueness", `displayName ${JSON.stringify(data.displayName)} is already taken`);
        // SCIMMY appends an existing member again on PATCH add: keep one.
        const seen = new Set();
        const members = (data.members ?? []).filter((m) => !seen.has(m.value) && seen.add(m.value));
        for (const m of members) {
            if (!users.has(m.value)) throw new Types.Error(400, "invalidValue", `member ${m.value} is not a known user`);
            m.display ??= users.get(m.value).displayName ?? users.get(m.value).userName;
            m.type ??= "User";
        }
        let stored, before = [];
        if (resource.id) {
            const old = groups.get(resource.id);
            if (!old) throw notFound(resource.id);
            before = old.members ?? [];
            groupByName.delete(lower(old.displayName));
            stored = { ...data, members, id: old.id, meta: { ...old.meta, lastModified: now } };
        } else {
            stored = { ...data, members, id: newID(), meta: { resourceType: "Group", created: now, lastModified: now } };
        }
        groups.set(stored.id, stored);
        groupByName.set(lower(stored.displayName), stored.id);
        linkMembers(stored.id, before, members);
        return stored;
    })
    .egress((resource) => {
        if (resource.id) {
            const g = groups.get(resource.id);
            if (!g) throw notFound(resource.id);
            return g;
        }
        return page(resource, select(resource.filter, groups, groupByName, "displayName"));
    })
    .degress((resource) => {
        const g = groups.get(resource.id);
        if (!g) throw notFound(resource.id);
        linkMembers(g.id, g.members ?? [], []);
        groups.delete(g.id);
        groupByName.delete(lower(g.displayName));
    });

// --seed-users N preloads N users (seed00001 …) for benchmarks.
for (let i = 1, n = Number(args["seed-users"] ?? 0); i <= n; i++) {
    const now = new Date().toISOString();
    const u = {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], id: newID(), userName: `seed${String(i).padStart(5, "0")}`,
        active: true, emails: [{ type: "work", value: `seed${i}@example.com`, primary: true }],
        meta: { resourceType: "User", created: now, lastModified: now },
    };
    users.set(u.id, u);
    userByName.set(lower(u.userName), u.id);
}

// ---- HTTP ----------------------------------------------------------------

const stats = { total: 0, byMethod: {} };
const authorized = (req) => {
    const got = Buffer.from(req.header("Authorization") ?? "");
    const want = Buffer.from(`Bearer ${token}`);
    return got.length === want.length && crypto.timingSafeEqual(got, want);
};

const app = express();
app.disable("x-powered-by");

app.get("/_peer/stats", (req, res) => authorized(req) ? res.json(stats) : res.sendStatus(401));
app.post("/_peer/reset", (req, res) => {
    if (!authorized(req)) return res.sendStatus(401);
    stats.total = 0;
    stats.byMethod = {};
    res.sendStatus(204);
});
// POST /_peer/load {users: [{userName, active, email}], groups: [{displayName,
// members: [userName…]}]} stores users and groups at once, uncounted (a test
// plants a large population or drift without thousands of requests).
// Answers {users: {userName: id}, groups: {displayName: id}}.
app.post("/_peer/load", express.json({ limit: "64mb" }), (req, res) => {
    if (!authorized(req)) return res.sendStatus(401);
    const now = new Date().toISOString();
    const out = { users: {}, groups: {} };
    for (const spec of req.body.users ?? []) {
        if (userByName.has(lower(spec.userName))) return res.status(409).json({ detail: `userName ${spec.userName} taken` });
        const u = {
            schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], id: newID(), userName: spec.userName, active: spec.active ?? true,
            meta: { resourceType: "User", created: now, lastModified: now },
        };
        if (spec.email) u.emails = [{ type: "work", value: spec.email, primary: true }];
        users.set(u.id, u);
        userByName.set(lower(u.userName), u.id);
        out.users[u.userName] = u.id;
    }
    for (const spec of req.body.groups ?? []) {
        const members = [];
        for (const name of spec.members ?? []) {
            const id = userByName.get(lower(name));
            if (!id) return res.status(400).json({ detail: `member ${name} is not a known user` });
            members.push({ value: id, display: users.get(id).userName, type: "User" });
        }
        let g = groups.get(groupByName.get(lower(spec.displayName)));
        const before = g?.members ?? [];
        if (g) g.members = members;
        else {
            g = { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], id: newID(), displayName: spec.displayName, members,
                meta: { resourceType: "Group", created: now, lastModified: now } };
            groups.set(g.id, g);
            groupByName.set(lower(g.displayName), g.id);
        }
        linkMembers(g.id, before, members);
        out.groups[g.displayName] = g.id;
    }
    res.json(out);
});
app.get("/_peer/password/:id", (req, res) => {
    if (!authorized(req)) return res.sendStatus(401);
    const h = passwords.get(req.params.id);
    return h ? res.json({ sha256: h }) : res.sendStatus(404);
});

app.use("/scim/v2", (req, res, next) => {
    stats.total++;
    stats.byMethod[req.method] = (stats.byMethod[req.method] ?? 0) + 1;
    // SCIMMY's filter tokeniser rejects \" inside a string value; \u0022 is
    // the same JSON string and it survives.
    // A provider without PATCH (or Bulk) refuses it, so tests prove the
    // client fell back instead of the peer being lenient.
    if ((!patchSupported && req.method === "PATCH") || (!bulkSupported && req.path === "/Bulk"))
        return res.status(501).type("application/scim+json").json({
            schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "501", detail: `${req.method} ${req.path} is not supported`,
        });
    if (typeof req.query?.filter === "string") req.query.filter = req.query.filter.replaceAll('\\"', "\\u0022");
    next();
});

app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.com/scim-peer",
    handler: (req) => {
        if (!authorized(req)) throw new Error("Authorization failed: a valid bearer token is required");
        return "jml";
    },
}));

// After the router: its constructor sets patch, bulk, filter and sort on.
SCIMMY.Config.set({
    patch: patchSupported,
    bulk: bulkSupported ? { maxOperations: 1000, maxPayloadSize: 1048576 } : false,
    filter: 200,
    sort: true,
    etag: false,
    changePassword: true,
});

const server = app.listen(port, "127.0.0.1", () => {
    console.log(`scim peer ready on http://127.0.0.1:${server.address().port}/scim/v2`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
