//! The project the realistic history describes: a task tracker with billing
//! and integrations. Its tables, in the order they are created, the columns
//! that get added to them over time, the enum columns and the references
//! added after the fact. Data only: `realistic.rs` decides what happens when.

/// A column: one a table is created with, or one added later.
#[derive(Debug)]
pub struct Idea {
    pub name: &'static str,
    pub ty: &'static str,
    /// NOT NULL: from the start for a table's own columns; after a backfill
    /// for an added one.
    pub required: bool,
    /// The value of a row, a SQL expression over the row's `id`: what a seed
    /// inserts and a backfill writes. `None`: left NULL.
    pub fill: Option<&'static str>,
    pub default: Option<&'static str>,
    /// A CHECK, with `{c}` for the column.
    pub check: Option<&'static str>,
    /// The name it is renamed to, one day.
    pub rename: Option<&'static str>,
    /// Its values are unique: it gets a unique index.
    pub unique: bool,
    /// The wider type it is changed to, one day (and back, going down).
    pub retype: Option<&'static str>,
    /// The predicate of a partial index on it, with `{c}` for the column.
    pub partial: Option<&'static str>,
}

const COLUMN: Idea = Idea {
    name: "",
    ty: "text",
    required: false,
    fill: None,
    default: None,
    check: None,
    rename: None,
    unique: false,
    retype: None,
    partial: None,
};

/// A table, as created.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// The name of its `<singular>_id` columns in other tables.
    pub singular: &'static str,
    /// `(column, table)`: NOT NULL references, each with its index.
    pub parents: &'static [(&'static str, &'static str)],
    pub columns: &'static [&'static Idea],
    /// Rows inserted right after it is created, as a share of the largest
    /// table's rows, `(numerator, denominator)`.
    pub seed: Option<(usize, usize)>,
    /// Created with the `set_updated_at` trigger (the others may get it later).
    pub trigger: bool,
    /// The name it is renamed to, one day.
    pub rename: Option<&'static str>,
    /// Reference rows inserted one day: values of its first column.
    pub reference: &'static [&'static str],
    /// A feature's table that nothing changes until it is dropped.
    pub legacy: bool,
}

const TABLE: Spec = Spec {
    name: "",
    singular: "",
    parents: &[],
    columns: &[],
    seed: None,
    trigger: true,
    rename: None,
    reference: &[],
    legacy: false,
};

const NAME: Idea = Idea {
    name: "name",
    required: true,
    fill: Some("'Name ' || id"),
    check: Some("char_length({c}) <= 200"),
    ..COLUMN
};
const SLUG: Idea = Idea {
    name: "slug",
    required: true,
    fill: Some("'org-' || id"),
    unique: true,
    ..COLUMN
};
const EMAIL: Idea = Idea {
    name: "email",
    required: true,
    fill: Some("'user' || id || '@example.com'"),
    check: Some("position('@' in {c}) > 1"),
    unique: true,
    ..COLUMN
};
const FULL_NAME: Idea = Idea {
    name: "full_name",
    fill: Some("'User ' || id"),
    rename: Some("display_name"),
    ..COLUMN
};
const TITLE: Idea = Idea {
    name: "title",
    required: true,
    fill: Some("'Title ' || id"),
    check: Some("char_length({c}) <= 300"),
    rename: Some("summary"),
    ..COLUMN
};
const ESTIMATE: Idea = Idea {
    name: "estimate",
    ty: "integer",
    fill: Some("(id % 13)::integer"),
    check: Some("{c} >= 0"),
    retype: Some("bigint"),
    ..COLUMN
};
const BODY: Idea = Idea {
    name: "body",
    required: true,
    fill: Some("repeat('lorem ipsum ', 3) || id"),
    ..COLUMN
};
const COLOR: Idea = Idea {
    name: "color",
    ty: "varchar(7)",
    required: true,
    fill: Some("'#336699'"),
    default: Some("'#cccccc'"),
    ..COLUMN
};
const ROLE: Idea = Idea {
    name: "role",
    required: true,
    fill: Some("'member'"),
    default: Some("'member'"),
    check: Some("{c} IN ('member', 'lead')"),
    ..COLUMN
};
const DUE_ON: Idea = Idea {
    name: "due_on",
    ty: "date",
    fill: Some("date '2025-01-01' + (id % 365)::integer"),
    ..COLUMN
};
const NUMBER: Idea = Idea {
    name: "number",
    required: true,
    fill: Some("'INV-' || lpad(id::text, 8, '0')"),
    unique: true,
    ..COLUMN
};
const TOTAL: Idea = Idea {
    name: "total",
    ty: "numeric(12,2)",
    required: true,
    fill: Some("(id % 500) * 1.25"),
    default: Some("0"),
    check: Some("{c} >= 0"),
    ..COLUMN
};
const AMOUNT: Idea = Idea {
    name: "amount",
    ty: "numeric(12,2)",
    required: true,
    fill: Some("(id % 90) * 2.5"),
    default: Some("0"),
    ..COLUMN
};
const PRICE_CENTS: Idea = Idea {
    name: "price_cents",
    ty: "integer",
    required: true,
    fill: Some("(id % 10)::integer * 900"),
    default: Some("0"),
    check: Some("{c} >= 0"),
    ..COLUMN
};
const URL: Idea = Idea {
    name: "url",
    required: true,
    fill: Some("'https://hooks.example.com/' || id"),
    check: Some("{c} LIKE 'https://%'"),
    rename: Some("endpoint_url"),
    ..COLUMN
};
const RESPONSE_CODE: Idea = Idea {
    name: "response_code",
    ty: "integer",
    fill: Some("200"),
    ..COLUMN
};
const KIND: Idea = Idea {
    name: "kind",
    required: true,
    fill: Some("'mention'"),
    ..COLUMN
};
const READ_AT: Idea = Idea {
    name: "read_at",
    ty: "timestamptz",
    partial: Some("{c} IS NULL"),
    ..COLUMN
};
const FILE_NAME: Idea = Idea {
    name: "file_name",
    required: true,
    fill: Some("'file-' || id || '.pdf'"),
    ..COLUMN
};
const BYTE_SIZE: Idea = Idea {
    name: "byte_size",
    ty: "bigint",
    fill: Some("id * 1024"),
    check: Some("{c} >= 0"),
    ..COLUMN
};
const MINUTES: Idea = Idea {
    name: "minutes",
    ty: "integer",
    required: true,
    fill: Some("(id % 480)::integer + 1"),
    check: Some("{c} > 0"),
    ..COLUMN
};
const ACCEPTED_AT: Idea = Idea {
    name: "accepted_at",
    ty: "timestamptz",
    ..COLUMN
};
const KEY: Idea = Idea {
    name: "key",
    required: true,
    fill: Some("'flag_' || id"),
    unique: true,
    ..COLUMN
};
const ENABLED: Idea = Idea {
    name: "enabled",
    ty: "boolean",
    required: true,
    fill: Some("false"),
    default: Some("false"),
    ..COLUMN
};
const FORMAT: Idea = Idea {
    name: "format",
    required: true,
    fill: Some("'csv'"),
    default: Some("'csv'"),
    check: Some("{c} IN ('csv', 'json')"),
    ..COLUMN
};
const PAYLOAD: Idea = Idea {
    name: "payload",
    ty: "jsonb",
    ..COLUMN
};
const ACTION: Idea = Idea {
    name: "action",
    required: true,
    fill: Some("'task.updated'"),
    ..COLUMN
};
const TOKEN_HASH: Idea = Idea {
    name: "token_hash",
    required: true,
    fill: Some("md5(id::text)"),
    unique: true,
    ..COLUMN
};
const STARTED_AT: Idea = Idea {
    name: "started_at",
    ty: "timestamptz",
    required: true,
    fill: Some("timestamptz '2025-01-01 00:00+00'"),
    default: Some("now()"),
    ..COLUMN
};
const BODY_HTML: Idea = Idea {
    name: "body_html",
    ..COLUMN
};

/// The tables in the order they are created. The first five hold the data
/// (created and seeded at the start of the history); the others come one
/// by one over time, empty, as features do.
pub const TABLES: &[Spec] = &[
    Spec {
        name: "organizations",
        singular: "organization",
        columns: &[&NAME, &SLUG],
        seed: Some((1, 50)),
        ..TABLE
    },
    Spec {
        name: "users",
        singular: "user",
        parents: &[("organization_id", "organizations")],
        columns: &[&EMAIL, &FULL_NAME],
        seed: Some((2, 5)),
        ..TABLE
    },
    Spec {
        name: "projects",
        singular: "project",
        parents: &[("organization_id", "organizations")],
        columns: &[&NAME, &DUE_ON],
        seed: Some((1, 5)),
        ..TABLE
    },
    Spec {
        name: "tasks",
        singular: "task",
        parents: &[("project_id", "projects")],
        columns: &[&TITLE, &ESTIMATE],
        seed: Some((1, 1)),
        ..TABLE
    },
    Spec {
        name: "comments",
        singular: "comment",
        parents: &[("task_id", "tasks"), ("author_id", "users")],
        columns: &[&BODY],
        seed: Some((3, 5)),
        trigger: false,
        ..TABLE
    },
    Spec {
        name: "labels",
        singular: "label",
        parents: &[("organization_id", "organizations")],
        columns: &[&NAME, &COLOR],
        rename: Some("tags"),
        ..TABLE
    },
    Spec {
        name: "task_labels",
        singular: "task_label",
        parents: &[("task_id", "tasks"), ("label_id", "labels")],
        trigger: false,
        ..TABLE
    },
    Spec {
        name: "legacy_reports",
        singular: "legacy_report",
        columns: &[&NAME, &PAYLOAD],
        trigger: false,
        legacy: true,
        ..TABLE
    },
    Spec {
        name: "teams",
        singular: "team",
        parents: &[("organization_id", "organizations")],
        columns: &[&NAME],
        ..TABLE
    },
    Spec {
        name: "team_members",
        singular: "team_member",
        parents: &[("team_id", "teams"), ("user_id", "users")],
        columns: &[&ROLE],
        ..TABLE
    },
    Spec {
        name: "milestones",
        singular: "milestone",
        parents: &[("project_id", "projects")],
        columns: &[&TITLE, &DUE_ON],
        ..TABLE
    },
    Spec {
        name: "plans",
        singular: "plan",
        columns: &[&NAME, &PRICE_CENTS],
        reference: &["free", "team", "business", "enterprise"],
        ..TABLE
    },
    Spec {
        name: "customers",
        singular: "customer",
        parents: &[("organization_id", "organizations")],
        columns: &[&NAME, &EMAIL],
        ..TABLE
    },
    Spec {
        name: "invoices",
        singular: "invoice",
        parents: &[("organization_id", "organizations")],
        columns: &[&NUMBER, &TOTAL],
        ..TABLE
    },
    Spec {
        name: "invoice_lines",
        singular: "invoice_line",
        parents: &[("invoice_id", "invoices")],
        columns: &[&NAME, &AMOUNT],
        trigger: false,
        ..TABLE
    },
    Spec {
        name: "legacy_sync_jobs",
        singular: "legacy_sync_job",
        columns: &[&PAYLOAD, &STARTED_AT],
        trigger: false,
        legacy: true,
        ..TABLE
    },
    Spec {
        name: "subscriptions",
        singular: "subscription",
        parents: &[("organization_id", "organizations"), ("plan_id", "plans")],
        columns: &[&STARTED_AT],
        ..TABLE
    },
    Spec {
        name: "payments",
        singular: "payment",
        parents: &[("invoice_id", "invoices")],
        columns: &[&AMOUNT],
        ..TABLE
    },
    Spec {
        name: "api_keys",
        singular: "api_key",
        parents: &[("user_id", "users")],
        columns: &[&TOKEN_HASH],
        ..TABLE
    },
    Spec {
        name: "webhooks",
        singular: "webhook",
        parents: &[("organization_id", "organizations")],
        columns: &[&URL],
        rename: Some("webhook_endpoints"),
        ..TABLE
    },
    Spec {
        name: "webhook_deliveries",
        singular: "webhook_delivery",
        parents: &[("webhook_id", "webhooks")],
        columns: &[&RESPONSE_CODE, &PAYLOAD],
        trigger: false,
        ..TABLE
    },
    Spec {
        name: "notifications",
        singular: "notification",
        parents: &[("user_id", "users")],
        columns: &[&KIND, &READ_AT],
        rename: Some("inbox_items"),
        ..TABLE
    },
    Spec {
        name: "attachments",
        singular: "attachment",
        parents: &[("task_id", "tasks")],
        columns: &[&FILE_NAME, &BYTE_SIZE],
        ..TABLE
    },
    Spec {
        name: "time_entries",
        singular: "time_entry",
        parents: &[("task_id", "tasks"), ("user_id", "users")],
        columns: &[&MINUTES],
        ..TABLE
    },
    Spec {
        name: "invitations",
        singular: "invitation",
        parents: &[("organization_id", "organizations")],
        columns: &[&EMAIL, &ACCEPTED_AT],
        ..TABLE
    },
    Spec {
        name: "feature_flags",
        singular: "feature_flag",
        columns: &[&KEY, &ENABLED],
        reference: &["new_editor", "bulk_export", "sso"],
        ..TABLE
    },
    Spec {
        name: "exports",
        singular: "export",
        parents: &[("organization_id", "organizations")],
        columns: &[&FORMAT],
        ..TABLE
    },
    Spec {
        name: "activity_events",
        singular: "activity_event",
        parents: &[("organization_id", "organizations"), ("user_id", "users")],
        columns: &[&ACTION, &PAYLOAD],
        trigger: false,
        ..TABLE
    },
    Spec {
        name: "legacy_imports",
        singular: "legacy_import",
        columns: &[&NAME, &BODY_HTML],
        trigger: false,
        legacy: true,
        ..TABLE
    },
];

/// Columns added to tables over time, each at most once per table.
pub const ADDED: &[Idea] = &[
    Idea {
        name: "priority",
        ty: "integer",
        required: true,
        fill: Some("(id % 5)::integer"),
        default: Some("0"),
        check: Some("{c} BETWEEN 0 AND 4"),
        ..COLUMN
    },
    Idea {
        name: "external_ref",
        fill: Some("'ext-' || id"),
        rename: Some("external_id"),
        unique: true,
        ..COLUMN
    },
    Idea {
        name: "score",
        ty: "numeric(10,2)",
        fill: Some("(id % 1000) / 10.0"),
        check: Some("{c} >= 0"),
        retype: Some("numeric(14,2)"),
        ..COLUMN
    },
    Idea {
        name: "position",
        ty: "integer",
        required: true,
        fill: Some("id::integer"),
        retype: Some("bigint"),
        ..COLUMN
    },
    Idea {
        name: "locale",
        ty: "varchar(16)",
        required: true,
        fill: Some("'en'"),
        default: Some("'en'"),
        retype: Some("text"),
        ..COLUMN
    },
    Idea {
        name: "archived_at",
        ty: "timestamptz",
        partial: Some("{c} IS NULL"),
        ..COLUMN
    },
    Idea {
        name: "notes",
        rename: Some("internal_notes"),
        ..COLUMN
    },
    Idea {
        name: "source",
        required: true,
        fill: Some("'import'"),
        default: Some("'web'"),
        check: Some("char_length({c}) <= 32"),
        ..COLUMN
    },
    Idea {
        name: "metadata",
        ty: "jsonb",
        required: true,
        fill: Some("'{}'::jsonb"),
        default: Some("'{}'::jsonb"),
        ..COLUMN
    },
    Idea {
        name: "sort_key",
        ty: "bigint",
        fill: Some("id * 10"),
        ..COLUMN
    },
    Idea {
        name: "revision",
        ty: "integer",
        required: true,
        fill: Some("1"),
        default: Some("1"),
        check: Some("{c} > 0"),
        ..COLUMN
    },
    Idea {
        name: "is_pinned",
        ty: "boolean",
        required: true,
        fill: Some("id % 20 = 0"),
        default: Some("false"),
        ..COLUMN
    },
    Idea {
        name: "weight",
        ty: "integer",
        fill: Some("(id % 100)::integer"),
        check: Some("{c} >= 0"),
        retype: Some("bigint"),
        ..COLUMN
    },
    Idea {
        name: "deleted_at",
        ty: "timestamptz",
        partial: Some("{c} IS NULL"),
        ..COLUMN
    },
    Idea {
        name: "last_seen_at",
        ty: "timestamptz",
        fill: Some("timestamptz '2025-01-01 00:00+00' + (id % 1000) * interval '1 minute'"),
        ..COLUMN
    },
    Idea {
        name: "timezone",
        required: true,
        fill: Some("'UTC'"),
        default: Some("'UTC'"),
        ..COLUMN
    },
    Idea {
        name: "currency",
        ty: "varchar(3)",
        required: true,
        fill: Some("'EUR'"),
        default: Some("'EUR'"),
        check: Some("char_length({c}) = 3"),
        ..COLUMN
    },
    Idea {
        name: "public_id",
        ty: "uuid",
        required: true,
        default: Some("gen_random_uuid()"),
        unique: true,
        ..COLUMN
    },
    Idea {
        name: "summary_html",
        ..COLUMN
    },
    Idea {
        name: "settings",
        ty: "jsonb",
        ..COLUMN
    },
];

/// An enum column, created with its type, whose type gains values (and
/// renames one) over time.
#[derive(Debug)]
pub struct EnumIdea {
    pub type_name: &'static str,
    pub table: &'static str,
    pub column: &'static str,
    /// The first value is the column's default.
    pub values: &'static [&'static str],
    /// Values added one by one: `(value, where)`, such as
    /// `("in_progress", Some("BEFORE 'done'"))`; the label named in `where`
    /// must still exist, or the value goes last.
    pub added: &'static [(&'static str, Option<&'static str>)],
    /// `(from, to)`: a value renamed, one day, if it exists by then.
    pub rename: Option<(&'static str, &'static str)>,
}

pub const ENUMS: &[EnumIdea] = &[
    EnumIdea {
        type_name: "task_status",
        table: "tasks",
        column: "status",
        values: &["open", "done"],
        added: &[
            ("in_progress", Some("BEFORE 'done'")),
            ("blocked", Some("AFTER 'in_progress'")),
            ("cancelled", None),
        ],
        rename: Some(("cancelled", "canceled")),
    },
    EnumIdea {
        type_name: "project_visibility",
        table: "projects",
        column: "visibility",
        values: &["private", "internal"],
        added: &[("public", None)],
        rename: None,
    },
    EnumIdea {
        type_name: "user_role",
        table: "users",
        column: "role",
        values: &["member", "admin"],
        added: &[("owner", Some("AFTER 'admin'")), ("guest", None)],
        rename: Some(("guest", "viewer")),
    },
    EnumIdea {
        type_name: "invoice_status",
        table: "invoices",
        column: "status",
        values: &["draft", "open", "paid"],
        added: &[("void", None), ("uncollectible", None)],
        rename: None,
    },
    EnumIdea {
        type_name: "subscription_state",
        table: "subscriptions",
        column: "state",
        values: &["trialing", "active", "canceled"],
        added: &[("past_due", Some("AFTER 'active'"))],
        rename: None,
    },
    EnumIdea {
        type_name: "delivery_status",
        table: "webhook_deliveries",
        column: "status",
        values: &["pending", "delivered", "failed"],
        added: &[("retrying", Some("AFTER 'failed'"))],
        rename: None,
    },
];

/// References added to existing tables after the fact: `(table, column,
/// referenced table)`, by the tables' first names.
pub const REFERENCES: &[(&str, &str, &str)] = &[
    ("tasks", "assignee_id", "users"),
    ("projects", "owner_id", "users"),
    ("tasks", "milestone_id", "milestones"),
    ("projects", "team_id", "teams"),
    ("invoices", "customer_id", "customers"),
    ("notifications", "task_id", "tasks"),
    ("attachments", "uploaded_by_id", "users"),
    ("activity_events", "project_id", "projects"),
    ("subscriptions", "billing_contact_id", "users"),
    ("users", "default_team_id", "teams"),
    ("comments", "edited_by_id", "users"),
    ("exports", "requested_by_id", "users"),
];
