//! `naming-foreign-key`: foreign keys are named `<table>_<cols>_fkey`, and a column referencing `<things>.id` is `<thing>_id`.

use crate::rules::naming_constraint::check_constraint_name;
use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct NamingForeignKey;

static INFO: RuleInfo = RuleInfo {
    id: "naming-foreign-key",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Foreign keys are `<table>_<cols>_fkey`; a column referencing `<things>.id` is named `<thing>_id`.",
};

impl Rule for NamingForeignKey {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for (constraint, fk) in table.constraints.iter().filter_map(|c| match &c.kind {
                catalog::model::ConstraintKind::ForeignKey(fk) => Some((c, fk)),
                _ => None,
            }) {
                let columns = &constraint.columns;
                check_constraint_name(
                    view,
                    out,
                    &INFO,
                    table,
                    constraint,
                    columns,
                    "fkey",
                    "foreign key",
                );
                for (column, referenced) in constraint.columns.iter().zip(&fk.referenced_columns) {
                    let expected = if referenced == "id" {
                        format!("{}_id", crate::english::singular(&fk.referenced_table))
                    } else {
                        referenced.clone()
                    };
                    // A role prefix is fine: `owner_user_id` references users.
                    if *column != expected && !column.ends_with(&format!("_{expected}")) {
                        out.report(
                            &INFO,
                            view.constraint_at(table, constraint),
                            format!(
                                "column `{}.{column}` references `{}.{referenced}` but is not named `{expected}`",
                                table.name, fk.referenced_table
                            ),
                        )
                        .help(format!("name it `{expected}` (or `<role>_{expected}`)"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn foreign_keys() {
        check(
            "naming-foreign-key",
            "CREATE TABLE api_keys (id bigint PRIMARY KEY, organization_id bigint);
             CREATE TABLE budgets (id bigint, organization_id bigint, api_key_id bigint, owner_api_key_id bigint, key bigint,
                 CONSTRAINT budgets_organization_id_api_key_id_fkey FOREIGN KEY (organization_id, api_key_id)
                     REFERENCES api_keys (organization_id, id),
                 CONSTRAINT budgets_owner_api_key_id_fkey FOREIGN KEY (owner_api_key_id) REFERENCES api_keys (id),
                 CONSTRAINT budgets_key_fk FOREIGN KEY (key) REFERENCES api_keys (id));
             CREATE TABLE teams (id bigint, api_key_id bigint REFERENCES api_keys);",
            expect_test::expect![[r#"
                error[naming-foreign-key]: foreign key `budgets_key_fk` is not named `budgets_key_fkey`
                  --> 202601010000_a.up.sql:6:18
                   |
                 2 |              CREATE TABLE budgets (id bigint, organization_id bigint, api_key_id bigint, owner_api_key_id bigint, key bigint,
                   | ...
                 6 |                  CONSTRAINT budgets_key_fk FOREIGN KEY (key) REFERENCES api_keys (id));
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CONSTRAINT budgets_key_fkey ...`: names are part of the schema's interface
                error[naming-foreign-key]: column `budgets.key` references `api_keys.id` but is not named `api_key_id`
                  --> 202601010000_a.up.sql:6:18
                   |
                 2 |              CREATE TABLE budgets (id bigint, organization_id bigint, api_key_id bigint, owner_api_key_id bigint, key bigint,
                   | ...
                 6 |                  CONSTRAINT budgets_key_fk FOREIGN KEY (key) REFERENCES api_keys (id));
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: name it `api_key_id` (or `<role>_api_key_id`)
                error[naming-foreign-key]: foreign key on `teams` (api_key_id) has no name (PostgreSQL calls it `teams_api_key_id_fkey`)
                  --> 202601010000_a.up.sql:7:63
                   |
                 7 |              CREATE TABLE teams (id bigint, api_key_id bigint REFERENCES api_keys);
                   |                                                               ^^^^^^^^^^^^^^^^^^^
                   = help: write `CONSTRAINT teams_api_key_id_fkey ...`: names are part of the schema's interface
            "#]],
        );
    }

    #[test]
    fn a_referencing_column_is_named_after_the_real_singular() {
        check(
            "naming-foreign-key",
            "CREATE TABLE identities (id bigint PRIMARY KEY);
             CREATE TABLE addresses (id bigint PRIMARY KEY);
             CREATE TABLE people (id bigint PRIMARY KEY);
             CREATE TABLE logins (id bigint,
                 identity_id bigint CONSTRAINT logins_identity_id_fkey REFERENCES identities,
                 billing_address_id bigint CONSTRAINT logins_billing_address_id_fkey REFERENCES addresses,
                 person_id bigint CONSTRAINT logins_person_id_fkey REFERENCES people,
                 identitie_id bigint CONSTRAINT logins_identitie_id_fkey REFERENCES identities);",
            expect_test::expect![[r#"
                error[naming-foreign-key]: column `logins.identitie_id` references `identities.id` but is not named `identity_id`
                  --> 202601010000_a.up.sql:8:38
                   |
                 4 |              CREATE TABLE logins (id bigint,
                   | ...
                 8 |                  identitie_id bigint CONSTRAINT logins_identitie_id_fkey REFERENCES identities);
                   |                                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: name it `identity_id` (or `<role>_identity_id`)
            "#]],
        );
    }
}
