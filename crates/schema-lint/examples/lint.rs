//! Lints SQL files and folders with `configs/lint.toml` and prints the human report: the library without the dbops CLI.
//!
//! `cargo run --release -p schema-lint --example lint -- migrations/`; exits 1 when an error-level finding remains.

fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let config = match schema_lint::Config::load("configs/lint.toml".as_ref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(3);
        }
    };
    match schema_lint::lint_paths(&paths, &config) {
        Ok(violations) => {
            print!("{}", schema_lint::render::human(&violations));
            std::process::exit(i32::from(schema_lint::has_errors(&violations)));
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(3);
        }
    }
}
