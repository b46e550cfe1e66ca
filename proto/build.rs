//! Generates the tonic code for `weft.proto` with a vendored protoc, so
//! building weft needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // Payloads are `Bytes`, so a retry can resend one without copying it.
    tonic_prost_build::configure()
        .bytes(".weft.v1.CallRequest.payload")
        .bytes(".weft.v1.CallReply.payload")
        .bytes(".weft.v1.Frame.data")
        .compile_protos(&["weft.proto"], &["."])?;
    println!("cargo:rerun-if-changed=weft.proto");
    Ok(())
}
