// Generates the plugin's permission files (`allow-connect`, ...) and its
// schema; `permissions/default.toml` grants all three as `dbbridge:default`.
const COMMANDS: &[&str] = &["connect", "send", "disconnect"];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
