# Shared by the scripts: find cargo even under sudo, whose PATH leaves out ~/.cargo/bin.
find_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local home
    for home in "${CARGO_HOME:-}" "$HOME/.cargo" ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo"}; do
        if [ -n "$home" ] && [ -x "$home/bin/cargo" ]; then
            export PATH="$home/bin:$PATH"
            return 0
        fi
    done
    echo "error: cargo not found; install Rust (https://rustup.rs) or put cargo on PATH" >&2
    return 1
}
