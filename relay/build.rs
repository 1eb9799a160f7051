//! Builds the browser UI and puts the finished page into `$OUT_DIR/site`, which `src/http.rs`
//! embeds. This is what lets `cargo run -p relay` build and serve everything in one command.
//!
//! Steps:
//! 1. make sure the `wasm32-unknown-unknown` target is installed (installing it with rustup
//!    when it is missing);
//! 2. compile the `wasm` crate for that target with a nested `cargo build`. It uses its own
//!    target directory, or it would wait forever on the lock the outer build holds, and it
//!    starts from a clean environment, so the host's `RUSTFLAGS` and clippy's wrapper stay out;
//! 3. generate the JS glue with `wasm-bindgen-cli-support` (the library behind the CLI, pinned
//!    to the same version as the `wasm-bindgen` crate);
//! 4. copy `index.html` and `web/` next to it, and measure the gzipped size of wasm + JS.

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("relay/ lives inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    for watched in [
        "wasm/src",
        "wasm/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
        "index.html",
        "web",
        "Cargo.lock",
        // The wasm's build profile lives in the workspace's manifest.
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    ensure_target(&rustc);

    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from).join("wasm");
    let mut build = Command::new(&cargo);
    build
        .current_dir(&root)
        .args(["build", "--package", "wasm", "--lib", "--target", TARGET, "--profile", "wasm", "--locked"])
        .arg("--target-dir")
        .arg(&target_dir);
    clean_env(&mut build);
    run(build, "compiling the wasm crate");

    let wasm = target_dir.join(TARGET).join("wasm").join("wasm.wasm");
    let site = out_dir.join("site");
    let pkg = site.join("pkg");
    let _ = fs::remove_dir_all(&site);
    fs::create_dir_all(&pkg).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", pkg.display())));

    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&wasm)
        .out_name("playground")
        .typescript(false)
        .debug(false)
        .keep_debug(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        // The library's default differs from the CLI's: without this, `init()` has no URL.
        .omit_default_module_path(false);
    if let Err(e) = bindgen.web(true) {
        fail(&format!("wasm-bindgen: {e}"));
    }
    if let Err(e) = bindgen.generate(&pkg) {
        fail(&format!("wasm-bindgen could not process {}: {e:#}", wasm.display()));
    }

    copy(&root.join("index.html"), &site.join("index.html"));
    copy_dir(&root.join("web"), &site.join("web"));

    let bundle = gzip_len(&pkg.join("playground_bg.wasm")) + gzip_len(&pkg.join("playground.js"));
    println!("cargo:rustc-env=WASM_BUNDLE_GZIP_BYTES={bundle}");
}

/// Installs the wasm target with rustup when the toolchain lacks it, or stops with one line
/// saying what to run.
fn ensure_target(rustc: &std::ffi::OsStr) {
    let libdir = Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]).output();
    let installed = match libdir {
        Ok(out) if out.status.success() => Path::new(String::from_utf8_lossy(&out.stdout).trim()).exists(),
        _ => false,
    };
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build the page)");
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    // Run rustup for the toolchain this build uses.
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        add.args(["--toolchain", &toolchain]);
    }
    match add.status() {
        Ok(status) if status.success() => {}
        _ => fail(&format!(
            "the {TARGET} target is missing: run `rustup target add {TARGET}`, then build again"
        )),
    }
}

/// Drops what the outer cargo set for this build script, so the nested build is an ordinary
/// one: no inherited target, flags, wrappers (clippy sets one), or jobserver.
fn clean_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited = (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC"
                    | "RUSTDOC"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "CARGO_MAKEFLAGS"
            );
        if inherited {
            cmd.env_remove(key);
        }
    }
}

fn run(mut cmd: Command, what: &str) {
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("{what} failed ({status}); see the errors above")),
        Err(e) => fail(&format!("{what}: cannot start cargo: {e}")),
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = fs::copy(from, to) {
        fail(&format!("cannot copy {} to {}: {e}", from.display(), to.display()));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let entries =
        fs::read_dir(from).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", from.display())));
    fs::create_dir_all(to).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", to.display())));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            copy(&path, &to.join(entry.file_name()));
        }
    }
}

fn gzip_len(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).unwrap_or_else(|e| fail(&format!("gzip: {e}")));
    let compressed = gz.finish().unwrap_or_else(|e| fail(&format!("gzip: {e}")));
    compressed.len() as u64
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
