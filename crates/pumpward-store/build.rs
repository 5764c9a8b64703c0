//! sqlx's `migrate!` embeds the migrations when the crate compiles; on
//! stable Rust it cannot tell cargo to compile again when a migration is
//! added or edited, so a build could run an old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
