//! The live PostgreSQL schema as one normalized model, and the data-classification map joined onto it.
//!
//! ```no_run
//! # async fn example(client: &tokio_postgres::Client) -> Result<(), catalog::Error> {
//! use catalog::classification::ClassificationMap;
//! use catalog::introspect::{introspect, IntrospectOptions};
//!
//! let mut schema = introspect(client, &IntrospectOptions::default()).await?;
//! let map = ClassificationMap::load("configs/data-classification.toml".as_ref())?;
//! for gap in map.apply(&mut schema) {
//!     println!("{gap}");
//! }
//! for table in &schema.tables {
//!     println!("{} has {} columns", table.display_name(), table.columns.len());
//! }
//! # Ok(()) }
//! ```
//!
//! - [`introspect`] reads tables, partitions, columns, constraints, indexes and
//!   comments of the chosen schemas in five catalog queries, pipelined on one
//!   connection, and leaves out objects that belong to extensions.
//! - [`model`] is the result: plain data, sorted, comparable and serializable.
//! - [`fingerprint`] reads every schema object as one line of text, so that
//!   two databases can be compared object by object.
//! - [`classification`] parses `configs/data-classification.toml` and joins it
//!   onto the model.
#![warn(missing_docs)]

pub mod classification;
mod error;
pub mod fingerprint;
pub mod introspect;
pub mod model;

pub use error::Error;
