//! `cargo xtask`: the project's automation.
fn main() {
    eprintln!("cargo xtask: tasks arrive with the foundation work");
    std::process::exit(2);
}
