//! APDU round trip through pcscd (being written).
fn main() {}
