//! `machi-merchant`: the shops' backend.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// machi-merchant: the shops' backend, run by the town for all shops — payment
/// requests with pay codes, payments matched from the chain, refunds, cash-outs, monthly
/// statements, and settlement by Zengin bank-transfer file.
///
/// Start here:
///   machi-demo                               # a whole local town: node + merchant API
/// Or beside a running node:
///   machi-merchant keygen --dir merchant-keys   # the town then registers the two keys
///   machi-merchant admin-token --data-dir merchant-data
///   machi-merchant run --node http://127.0.0.1:7070 --data-dir merchant-data \
///       --town <town account> --registrar-key merchant-keys/registrar.key \
///       --settler-key merchant-keys/settler.key --town-bank town-bank.toml
///   machi-merchant demo --data-dir merchant-data   # the screens' URLs, each with a pairing code
#[derive(Parser)]
#[command(name = "machi-merchant", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the merchant API beside a node.
    Run {
        /// The node's address, or a chain's replicas separated by commas
        /// (http://10.0.0.1:7101,http://10.0.0.2:7101): a request that one cannot serve
        /// (down, no leader, halted) goes to the next, the same signed transaction.
        #[arg(long, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070", value_parser = machi_client::node_list)]
        node: String,
        /// Folder for the merchant API's data (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7071")]
        listen: String,
        /// The town's account (64 hex digits, printed by `machi-node init`): the chain the
        /// node serves must begin with a genesis the town signed.
        #[arg(long)]
        town: machi_ledger::AccountId,
        /// The town's delegated shop-registrar key file (from `machi-merchant keygen`,
        /// registered on chain by the town): shops are registered with it and their keys
        /// sealed under it. The town's own key is never needed here.
        #[arg(long)]
        registrar_key: PathBuf,
        /// The town's delegated settler key file: settlements are recorded with it.
        #[arg(long)]
        settler_key: PathBuf,
        /// The town's delegated issuer key file (from `keygen`, registered by the town as
        /// `--delegation issuer`): the town office's form creates issues with it. Without
        /// it the form checks an issue and gives the file for the town's own key.
        #[arg(long)]
        issuer_key: Option<PathBuf>,
        /// TOML file with the town's own bank account, for settlement files
        /// (see docs/MERCHANT-API.md). Without it, settlements are refused.
        #[arg(long)]
        town_bank: Option<PathBuf>,
        /// The address of a reverse proxy in front of the service (repeatable). Only
        /// for requests from these is the client's address taken from
        /// X-Forwarded-For, for the pay-code look-up limit.
        #[arg(long = "trusted-proxy", value_name = "ADDR")]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// The service is reached over TLS only: the pages' cookies are always `Secure`
        /// (otherwise only when a trusted proxy says `X-Forwarded-Proto: https`).
        #[arg(long)]
        secure_cookies: bool,
    },
    /// Create the service's two delegated keys (a shop registrar and a settler) in DIR,
    /// and print their accounts and the commands the town runs to register them.
    Keygen {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a new admin token for the town (only its hash is kept); works while the
    /// service runs.
    AdminToken {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print a pairing code (8 digits, valid 10 minutes, used once) for a browser: a
    /// shop's counter or back office, or the town office. Works while the service runs.
    Pair {
        #[arg(long)]
        data_dir: PathBuf,
        /// The shop's account (64 hex digits).
        #[arg(long, required_unless_present = "town_office", conflicts_with = "town_office")]
        shop: Option<machi_ledger::AccountId>,
        /// What the device may do: point_of_sale (the counter) or full (the back office).
        #[arg(long, value_enum, default_value = "point_of_sale")]
        scope: PairScope,
        /// Pair the town office instead of a shop.
        #[arg(long)]
        town_office: bool,
        /// The device's name, shown on the devices pages.
        #[arg(long, default_value = "")]
        label: String,
        /// The service's address, for the printed URL.
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        url: String,
    },
    /// Print the counter, back-office and town-office URLs, each with a fresh pairing
    /// code (for the first shop in the data folder). Works while the service runs.
    Demo {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        url: String,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PairScope {
    #[value(name = "point_of_sale")]
    PointOfSale,
    Full,
}

/// Makes a pairing code and says where to use it.
fn print_pairing(
    data_dir: &std::path::Path,
    url: &str,
    what: &str,
    caller: machi_merchant::DeviceCaller,
    label: &str,
) -> anyhow::Result<()> {
    let code = machi_merchant::pairing_code_offline(data_dir, caller, label, machi_host::now_ms())?;
    let minutes = machi_merchant::PAIRING_CODE_VALID_MS / 60_000;
    println!(
        "{what}: {}/pair  pairing code {}-{}  (valid {minutes} minutes, once)",
        url.trim_end_matches('/'),
        &code[..4],
        &code[4..]
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::AdminToken { data_dir } => {
            println!("{}", machi_merchant::new_admin_token(&data_dir)?);
            Ok(())
        }
        Command::Keygen { dir } => {
            let (registrar, settler) = machi_merchant::generate_delegate_keys(&dir)?;
            let issuer = machi_merchant::generate_issuer_key(&dir)?;
            println!(
                "shop registrar: {registrar}  ({})",
                dir.join(machi_merchant::REGISTRAR_KEY_FILE).display()
            );
            println!("settler:        {settler}  ({})", dir.join(machi_merchant::SETTLER_KEY_FILE).display());
            println!("issuer:         {issuer}  ({})", dir.join(machi_merchant::ISSUER_KEY_FILE).display());
            println!();
            println!("The town registers them, with the town's key, at the town office:");
            for (delegation, account) in
                [("shop-registrar", registrar), ("settler", settler), ("issuer", issuer)]
            {
                println!(
                    "  machi-wallet town register-delegate --delegation {delegation} --account {account} \\\n      --name \"merchant API\""
                );
            }
            Ok(())
        }
        Command::Pair { data_dir, shop, scope, town_office, label, url } => {
            let (what, caller) = match (town_office, shop) {
                (true, _) => ("town office", machi_merchant::DeviceCaller::TownOffice),
                (false, Some(shop)) => {
                    let (what, scope) = match scope {
                        PairScope::PointOfSale => ("counter", machi_merchant::Scope::PointOfSale),
                        PairScope::Full => ("back office", machi_merchant::Scope::Full),
                    };
                    (what, machi_merchant::DeviceCaller::Shop { shop, scope })
                }
                (false, None) => anyhow::bail!("give --shop ACCOUNT or --town-office"),
            };
            print_pairing(&data_dir, &url, what, caller, &label)
        }
        Command::Demo { data_dir, url } => {
            let shops = machi_merchant::shops_in(&data_dir)?;
            let Some((shop, name)) = shops.first() else {
                anyhow::bail!("no shop is registered in {} yet", data_dir.display());
            };
            println!("Screens of {name} and the town office (open the URL, type the code):");
            let shop = *shop;
            for (what, caller) in [
                (
                    "counter",
                    machi_merchant::DeviceCaller::Shop { shop, scope: machi_merchant::Scope::PointOfSale },
                ),
                (
                    "back office",
                    machi_merchant::DeviceCaller::Shop { shop, scope: machi_merchant::Scope::Full },
                ),
                ("town office", machi_merchant::DeviceCaller::TownOffice),
            ] {
                print_pairing(&data_dir, &url, what, caller, &format!("demo {what}"))?;
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&machi_merchant::openapi())?);
            Ok(())
        }
        Command::Run {
            node,
            data_dir,
            listen,
            town,
            registrar_key,
            settler_key,
            issuer_key,
            town_bank,
            trusted_proxies,
            secure_cookies,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async move {
                let town_bank = town_bank.map(|p| machi_merchant::load_town_bank(&p)).transpose()?;
                let config = machi_merchant::Config {
                    data_dir,
                    node_url: node,
                    town,
                    registrar_key: machi_host::read_key(&registrar_key)?,
                    settler_key: machi_host::read_key(&settler_key)?,
                    issuer_key: issuer_key.map(|p| machi_host::read_key(&p)).transpose()?,
                    town_bank,
                    clock: Arc::new(machi_host::SystemClock),
                };
                let network = machi_merchant::Network { trusted_proxies, secure_cookies };
                let merchant = machi_merchant::Merchant::open_with(config, network).await?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                println!("machi-merchant listening on http://{}", listener.local_addr()?);
                use std::io::Write as _;
                std::io::stdout().flush()?;
                machi_merchant::serve(merchant, listener, machi_host::shutdown_signal())
                    .await
                    .context("serving")
            })
        }
    }
}
