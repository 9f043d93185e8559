//! The command line: every flag, its environment variable and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_core::tenancy::Role;

const ABOUT: &str = "Ferry: an integration hub for engagement platforms";

const LONG_ABOUT: &str = "\
Ferry: an integration hub for engagement platforms.

Ferry holds each institution's contacts and message history and keeps them in sync with the \
institution's CRMs and student information systems (REST APIs and SFTP file drops). One binary \
runs the web UI, the REST API and the worker that runs integrations.

Every setting is a flag with an environment variable as fallback (the flag wins). Data lives in \
an embedded SQLite database in the data directory unless --database-url names a PostgreSQL \
database.";

const ENVIRONMENT: &str = "\
Environment:
  FERRY_MASTER_KEY    The 32-byte master key that encrypts secrets at rest, as base64 or 64 hex
                      digits. Environment only (never a flag, so it does not show in `ps`).
                      Without it Ferry uses DATA_DIR/master.key, created (mode 0600) on first use.
  FERRY_HUBSPOT_CLIENT_ID, FERRY_HUBSPOT_CLIENT_SECRET
                      The HubSpot OAuth app that connects HubSpot accounts (environment only).
  FERRY_HUBSPOT_API_URL, FERRY_HUBSPOT_AUTH_URL
                      HubSpot's API and consent page (default https://api.hubapi.com and
                      https://app.hubspot.com/oauth/authorize); `ferry emulate hubspot` can stand in.
  FERRY_SALESFORCE_CLIENT_ID, FERRY_SALESFORCE_CLIENT_SECRET
                      The Salesforce connected app that connects orgs through OAuth with PKCE
                      (environment only).
  FERRY_SALESFORCE_LOGIN_URL
                      Salesforce's login host (default https://login.salesforce.com; a sandbox's
                      https://test.salesforce.com or a My Domain URL); `ferry emulate salesforce`
                      can stand in.
  FERRY_SMTP_URL, FERRY_ALERT_FROM
                      The SMTP server alert emails go through (smtp://host:25,
                      smtp://user:pass@host:587?tls=required, smtps://user:pass@host:465) and
                      their From address (environment only). Without them alerts go only to
                      webhooks.
  FERRY_DATA_DIR, FERRY_DATABASE_URL, FERRY_LISTEN, FERRY_PUBLIC_URL, FERRY_EGRESS_IPS,
  FERRY_LOG_FORMAT, FERRY_LOG
                      Fallbacks for the flags of the same name.

Examples:
  ferry demo                                      Try Ferry with sample data on 127.0.0.1:8080
  ferry migrate && ferry serve                    Run Ferry on the embedded SQLite database
  FERRY_DATABASE_URL=postgres://ferry@db/ferry ferry worker
                                                  An extra worker against a shared PostgreSQL
  ferry institution create --slug state-u --name \"State University\"
  ferry user create --institution state-u --email ana@state.edu --role admin
  ferry token create --institution state-u --role viewer --name reporting
  ferry integration create --institution state-u --file eab-notes.json
  ferry import contacts students.csv --institution state-u";

/// The `ferry` command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = ENVIRONMENT,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Directory for Ferry's own files: the SQLite database and the master key file. Created
    /// (mode 0700) when needed.
    #[arg(
        long,
        env = "FERRY_DATA_DIR",
        default_value = "./ferry-data",
        value_name = "DIR",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Database to use: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [default: the SQLite
    /// file DATA_DIR/ferry.db].
    #[arg(
        long,
        env = "FERRY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,

    /// Address the web server listens on (host:port). Port 0 picks a free port.
    #[arg(
        long,
        env = "FERRY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR",
        global = true
    )]
    pub listen: String,

    /// The address people reach Ferry at, e.g. https://ferry.example.edu. Links use it, and an
    /// https:// address makes the session cookie Secure.
    #[arg(long, env = "FERRY_PUBLIC_URL", value_name = "URL", global = true)]
    pub public_url: Option<String>,

    /// The IP addresses Ferry's SFTP uploads come from, comma-separated, shown to admins to add
    /// to their server's allow list (e.g. 34.197.84.241,3.233.244.171).
    #[arg(
        long,
        env = "FERRY_EGRESS_IPS",
        value_name = "IPS",
        value_delimiter = ',',
        global = true
    )]
    pub egress_ips: Vec<String>,

    /// The reverse proxies in front of Ferry, as addresses or CIDR networks, comma-separated
    /// (e.g. 10.0.0.0/8,127.0.0.1). Only requests from these peers have their client address
    /// taken from X-Forwarded-For (sign-in throttling and the audit log use it); from any other
    /// peer the header is ignored.
    #[arg(
        long,
        env = "FERRY_TRUSTED_PROXIES",
        value_name = "CIDRS",
        global = true
    )]
    pub trusted_proxies: Option<String>,

    /// How often a worker writes the heartbeat of the run it is on, in seconds; idle workers
    /// look for runs whose lease ran out as often.
    #[arg(
        long,
        env = "FERRY_WORKER_HEARTBEAT_SECS",
        default_value_t = 3,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=3600),
        global = true
    )]
    pub worker_heartbeat_secs: u64,

    /// A run whose heartbeat is older than this many seconds has lost its worker and is taken
    /// over by another (at most LEASE + HEARTBEAT seconds after the last heartbeat). At least
    /// 3 times --worker-heartbeat-secs.
    #[arg(
        long,
        env = "FERRY_WORKER_LEASE_SECS",
        default_value_t = 10,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86400),
        global = true
    )]
    pub worker_lease_secs: u64,

    /// How many runs one worker executes at once; runs of one integration never overlap.
    #[arg(
        long,
        env = "FERRY_WORKER_CONCURRENCY",
        default_value_t = 4,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=64),
        global = true
    )]
    pub worker_concurrency: u16,

    /// Address Ferry's own SFTP server (institutions' file uploads) listens on, host:port, or
    /// `off`. `ferry serve` and `ferry sftp-server` start it.
    #[arg(
        long,
        env = "FERRY_SFTP_LISTEN",
        default_value = "127.0.0.1:2222",
        value_name = "ADDR|off",
        global = true
    )]
    pub sftp_listen: String,

    /// Where uploaded files are kept, encrypted: `s3://BUCKET[/PREFIX]` for an S3-compatible
    /// bucket that several Ferry nodes share (credentials and endpoint from the `AWS_*`
    /// variables), or a folder. Default: the `vault` folder in the data directory.
    #[arg(long, env = "FERRY_STORAGE_URL", value_name = "URL", global = true)]
    pub storage_url: Option<String>,

    /// Log format on stderr.
    #[arg(
        long,
        env = "FERRY_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT",
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,

    /// Which logs to show, as a RUST_LOG-style filter (e.g. `info`, `warn,ferry_worker=debug`).
    #[arg(
        long = "log",
        env = "FERRY_LOG",
        default_value = "info",
        value_name = "FILTER",
        global = true
    )]
    pub log_filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A role in an institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, including settings and integrations.
    Admin,
    /// Read contacts, messages, runs and logs; change nothing.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web UI, the REST API and the worker in one process.
    #[command(
        long_about = "Run the web UI, the REST API and the worker in one process.\n\n\
Applies pending database migrations first. Ctrl-C or SIGTERM stops taking new requests and runs, \
lets open requests and the current run finish, and exits.",
        after_help = "Examples:\n  ferry serve\n  ferry serve --listen 0.0.0.0:8080 --public-url https://ferry.example.edu\n  \
FERRY_DATABASE_URL=postgres://ferry:secret@db/ferry ferry serve"
    )]
    Serve,

    /// Run only the worker: claim queued integration runs and execute them.
    #[command(
        long_about = "Run only the worker: claim queued integration runs and execute them.\n\n\
Applies pending migrations first. Start several workers against one PostgreSQL database to \
share the load; each run is claimed by exactly one worker. Ctrl-C or SIGTERM lets the current \
run finish, then exits.",
        after_help = "Examples:\n  ferry worker\n  ferry worker --once    # e.g. from cron: at most one run, then exit"
    )]
    Worker(WorkerArgs),

    /// Run only Ferry's SFTP server, where institutions upload files (encrypted as they land).
    #[command(
        name = "sftp-server",
        long_about = "Run only Ferry's SFTP server, where institutions' accounts upload files; each \
file is encrypted at rest as it lands (in DATA_DIR/vault). `ferry serve` runs it too unless \
--sftp-listen is `off`. Host keys are created once and kept in the database, so several servers \
behind one load balancer present the same keys. Applies pending migrations first. Ctrl-C or \
SIGTERM stops it.",
        after_help = "Examples:\n  ferry sftp-server --sftp-listen 0.0.0.0:2222\n  \
FERRY_DATABASE_URL=postgres://ferry:secret@db/ferry ferry sftp-server"
    )]
    SftpServer,

    /// Apply pending database migrations and list them.
    #[command(
        long_about = "Apply pending database migrations and list them, or say the database is up \
to date. Safe to run at any time and from several machines at once.",
        after_help = "Examples:\n  ferry migrate\n  ferry migrate --database-url postgres://ferry:secret@db/ferry"
    )]
    Migrate,

    /// Manage institutions (tenants).
    #[command(subcommand)]
    Institution(InstitutionCommand),

    /// Manage users who sign in to the web UI.
    #[command(subcommand)]
    User(UserCommand),

    /// Manage API tokens for the REST API.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Manage integration instances: the same checks as the web UI and the REST API.
    #[command(subcommand)]
    Integration(IntegrationCommand),

    /// Import data from files.
    #[command(subcommand)]
    Import(ImportCommand),

    /// Try Ferry: create a demo institution with sample data, then serve it.
    #[command(
        long_about = "Try Ferry: create a demo institution with sample data, then serve it.\n\n\
Creates the data directory and database if needed, the institution \"Demo University\" (slug \
`demo`), an admin user admin@demo.ferry.test, custom fields, about 1,000 contacts and 20,000 \
messages (sample data only once: re-running keeps the data). The admin's password is reset and \
printed on every run. Then serves exactly like `ferry serve`, with two local stand-ins on loopback: an SFTP server receiving the demo EAB Notes export, and a HubSpot emulator with an incoming and an outgoing HubSpot instance.",
        after_help = "Examples:\n  ferry demo\n  ferry demo --listen 127.0.0.1:9000\n  \
ferry demo --data-dir /tmp/ferry-demo --contacts 5000 --messages 100000"
    )]
    Demo(DemoArgs),

    /// Measure Ferry's performance against a baseline.
    #[command(subcommand)]
    Bench(BenchCommand),

    /// Run a local stand-in for an external API (for trying Ferry and for tests).
    #[command(subcommand)]
    Emulate(EmulateCommand),
}

#[derive(Debug, Subcommand)]
pub enum EmulateCommand {
    /// Serve HubSpot's CRM contacts, properties and OAuth APIs from memory.
    #[command(
        long_about = "Serve HubSpot's CRM contacts, properties and OAuth APIs from memory, at the root of ADDR (`/crm/v3/…`, `/oauth/…`), following HubSpot's published OpenAPI documents: batch and search limits, rate limits with their 429 answers, unique emails (409), and OAuth with the client id `ferry-emulator-client-id` and secret `ferry-emulator-client-secret`. Nothing is kept after it stops. Test-only administration lives under `/__emulator/` (seed, dump, faults, limits). Point Ferry at it with FERRY_HUBSPOT_API_URL=http://ADDR and FERRY_HUBSPOT_AUTH_URL=http://ADDR/oauth/authorize.",
        after_help = "Examples:
  ferry emulate hubspot --listen 127.0.0.1:9100 --token pat-local-test
  curl -H 'Authorization: Bearer pat-local-test' http://127.0.0.1:9100/crm/v3/objects/contacts"
    )]
    Hubspot {
        /// The address to serve on.
        #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
        listen: String,
        /// A private-app access token the emulator accepts.
        #[arg(long, value_name = "T")]
        token: Option<String>,
    },
    /// Serve EveryAction's (NGP VAN API v4) people and changed-entity export APIs from memory.
    #[command(
        long_about = "Serve EveryAction's (NGP VAN API v4) people, API key profile and changed-entity export APIs from memory, under `/v4/` at ADDR, following VAN's observed behaviour: HTTP Basic with the application name and `KEY|1` (401 otherwise), find/findOrCreate with VAN's match minimum and 302 answers, updates that append phones, emails and addresses, export jobs whose CSV files are downloaded without authentication, and the per-key rate limit with its 429 \"Try again in N ms\" (no Retry-After). Nothing is kept after it stops. Test-only administration lives under `/__emulator/` (seed people, flip opt-ins, faults, limits, clock). Point an EveryAction integration's API host at http://ADDR/v4/.",
        after_help = "Examples:
  ferry emulate everyaction --listen 127.0.0.1:9200 --app-name ferry --api-key 3f2504e0-4f89-11d3-9a0c-0305e82c3301
  curl -u 'ferry:3f2504e0-4f89-11d3-9a0c-0305e82c3301|1' http://127.0.0.1:9200/v4/apiKeyProfiles"
    )]
    Everyaction {
        /// The address to serve on.
        #[arg(long, default_value = "127.0.0.1:9200", value_name = "ADDR")]
        listen: String,
        /// The application name (HTTP Basic user name) the key was issued to; shown by
        /// apiKeyProfiles (any user name is accepted, as at VAN).
        #[arg(long, default_value = "ferry", value_name = "NAME")]
        app_name: String,
        /// The API key; clients send it as the password `KEY|1`.
        #[arg(long, value_name = "KEY")]
        api_key: String,
        /// Requests per second the key may make (VAN's "High" profile: 200; "Medium": 15).
        #[arg(long, default_value_t = 200, value_name = "N")]
        rate_limit: u32,
    },
    /// Serve Salesforce's OAuth and REST data APIs (Contact, Lead) from memory.
    #[command(
        long_about = "Serve Salesforce's OAuth (web-server flow with PKCE, refresh token, JWT bearer) and REST data APIs (versions, limits, describe, SOQL query and queryMore, records, upsert by external id, sObject Collections, Bulk API 2.0 ingest and query jobs, updated/deleted) for Contact and Lead from memory, at the root of ADDR (`/services/oauth2/…`, `/services/data/vXX.X/…`), following the behaviour in the team's Salesforce notes: Salesforce's error shapes and codes, pages of up to 2,000 rows, a blocking duplicate rule on email, `Sforce-Limit-Info` on every answer and a daily limit (403 REQUEST_LIMIT_EXCEEDED). The connected app's consumer key is `3MVG9ferry.emulator.consumer.key`, its secret `ferry-emulator-consumer-secret`, its user `integration@ferry-emulator.test`. Nothing is kept after it stops. Test-only administration lives under `/__emulator/` (seed and dump records, faults, limits, clock, sessions, tokens without the consent page). Point Ferry at it with FERRY_SALESFORCE_LOGIN_URL=http://ADDR and the consumer key and secret above as FERRY_SALESFORCE_CLIENT_ID and FERRY_SALESFORCE_CLIENT_SECRET.",
        after_help = "Examples:
  ferry emulate salesforce --listen 127.0.0.1:9300
  ferry emulate salesforce --listen 127.0.0.1:9443 --tls   # prints the CA file to trust
  curl -X POST http://127.0.0.1:9300/__emulator/oauth/tokens
  curl -H 'Authorization: Bearer TOKEN' 'http://127.0.0.1:9300/services/data/v62.0/query?q=SELECT+Id,Email+FROM+Contact'"
    )]
    Salesforce {
        /// The address to serve on.
        #[arg(long, default_value = "127.0.0.1:9300", value_name = "ADDR")]
        listen: String,
        /// The connected app's certificate (or public key), PEM, for the JWT bearer flow.
        #[arg(long, value_name = "FILE")]
        jwt_certificate: Option<std::path::PathBuf>,
        /// The org's daily API request limit.
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        daily_limit: u64,
        /// Serve HTTPS with a certificate made at start (for `localhost` and the listening
        /// address); its PEM file's path is printed, for clients to trust as their CA.
        #[arg(long)]
        tls: bool,
    },
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queue the scheduled runs that are due, then execute at most one queued run and exit
    /// (prints its id, or "no queued run").
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum InstitutionCommand {
    /// Create an institution; prints its id and slug.
    #[command(
        after_help = "Examples:\n  ferry institution create --slug state-u --name \"State University\"\n  \
ferry institution create --slug west-cc --name \"West Community College\" --time-zone America/Los_Angeles"
    )]
    Create {
        /// Short name used in URLs and commands: 2-63 lower-case letters, digits and single hyphens.
        #[arg(long)]
        slug: String,
        /// Display name, e.g. "State University".
        #[arg(long)]
        name: String,
        /// IANA time zone that times are shown in [default: America/New_York].
        #[arg(long, value_name = "TZ")]
        time_zone: Option<String>,
    },
    /// List institutions.
    #[command(after_help = "Example:\n  ferry institution list")]
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with a role in an institution, or give an existing user that role.
    #[command(
        long_about = "Create a user with a role in an institution, or give an existing user that role.\n\n\
The password is read from the first line of standard input when it is not a terminal (at least 10 \
characters). Otherwise a random password is generated and printed once. If the user exists, the \
role is granted (replacing any role in that institution) and the password is left unchanged.",
        after_help = "Examples:\n  ferry user create --institution state-u --email ana@state.edu --role admin\n  \
printf '%s\\n' \"$PASSWORD\" | ferry user create --institution state-u --email bo@state.edu --role viewer"
    )]
    Create {
        /// Slug of the institution.
        #[arg(long, value_name = "SLUG")]
        institution: String,
        /// Email address the user signs in with.
        #[arg(long)]
        email: String,
        /// Role in the institution.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints only the token on stdout.
    #[command(
        long_about = "Create an API token; prints only the token on stdout (details go to stderr).\n\n\
The token is shown once: Ferry stores only a hash. Send it as `Authorization: Bearer <token>`.",
        after_help = "Examples:\n  ferry token create --institution state-u --role admin --name crm-sync\n  \
TOKEN=$(ferry token create --institution state-u --role viewer)\n  \
curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/api/v1/contacts"
    )]
    Create {
        /// Slug of the institution the token acts in.
        #[arg(long, value_name = "SLUG")]
        institution: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A name to recognise the token by in lists.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the token stops being accepted (1-3650); without it, it does not expire.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_in_days: Option<u16>,
    },
    /// List an institution's API tokens: id, name, role, status, created, last used, expiry.
    #[command(
        long_about = "List an institution's API tokens, newest first: id, name, role, status \
(active, expired or revoked), when each was created, last used (to within five minutes) and \
expires. Never the secrets: Ferry keeps only hashes.",
        after_help = "Example:\n  ferry token list --institution state-u"
    )]
    List {
        /// Slug of the institution.
        #[arg(long, value_name = "SLUG")]
        institution: String,
    },
    /// Revoke an API token: it stops authenticating at once.
    #[command(after_help = "Example:\n  ferry token revoke 7 --institution state-u")]
    Revoke {
        /// The token's id (see `ferry token list`).
        #[arg(value_name = "ID")]
        id: i64,
        /// Slug of the institution it belongs to.
        #[arg(long, value_name = "SLUG")]
        institution: String,
    },
}

/// The institution and integration a command acts on.
#[derive(Debug, Args)]
pub struct IntegrationRef {
    /// The integration's id (see `ferry integration list`).
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Slug of the institution it belongs to.
    #[arg(long, value_name = "SLUG")]
    pub institution: String,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// List the integration types this build offers.
    Types,
    /// List an institution's integrations.
    #[command(after_help = "Example:\n  ferry integration list --institution state-u")]
    List {
        /// Slug of the institution.
        #[arg(long, value_name = "SLUG")]
        institution: String,
    },
    /// Print one integration as JSON (secrets only by name).
    Show(IntegrationRef),
    /// Create an integration from a JSON document; prints its id on stdout.
    #[command(
        long_about = "Create an integration from a JSON document: the body of \
`POST /api/v1/integrations` (`type`, `name`, `description`, `enabled`, `config`, `secrets`). \
It is checked exactly as the web UI and the REST API check it, including a connection check \
with the remote where the type has one; nothing is stored unless all of it is valid. Prints \
the new id on stdout.",
        after_help = "Examples:\n  ferry integration create --institution state-u --file eab.json\n  \
ferry integration create --institution state-u --file - < eab.json"
    )]
    Create {
        /// Slug of the institution.
        #[arg(long, value_name = "SLUG")]
        institution: String,
        /// The JSON document, or `-` for stdin (keeps secrets out of files).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Change an integration with a JSON document (`config` is a JSON merge patch).
    #[command(
        long_about = "Change an integration with a JSON document: the body of \
`PATCH /api/v1/integrations/{id}`. Parts left out stay; `config` is a JSON merge patch \
(RFC 7386); a secret given replaces it and `null` removes it. Nothing is stored unless all of \
it is valid.",
        after_help = "Example:\n  echo '{\"config\":{\"sftp\":{\"port\":2222}}}' | ferry integration update 3 --institution state-u --file -"
    )]
    Update {
        #[command(flatten)]
        target: IntegrationRef,
        /// The JSON document, or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Turn an integration's scheduled and change-triggered runs on.
    Enable(IntegrationRef),
    /// Turn an integration's scheduled and change-triggered runs off.
    Disable(IntegrationRef),
    /// Delete an integration and its runs (its Sync Log rows stay).
    Delete {
        #[command(flatten)]
        target: IntegrationRef,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Test Connection with the saved settings; exits non-zero when it fails.
    Test(IntegrationRef),
    /// Queue a run now (as Run now does); prints the run id on stdout.
    Run(IntegrationRef),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import contacts from a CSV file, with matching by platform ID, CRM ID and phone.
    #[command(
        long_about = "Import contacts from a CSV file, with matching by platform ID, CRM ID and phone.\n\n\
The header row names the columns: id, first_name, last_name, preferred_name, phone, email, \
enrollment_id, crm_id, opt_in, test_user and the institution's custom fields. A blank cell leaves a \
field as it is; UNSET clears it. Each row applies whole or not at all; rows with problems are \
listed, and the command exits with status 3 unless --allow-skipped is given; a quote that is never \
closed costs only its own row (reading goes on from the next line). A file that cannot be read \
(not UTF-8, unknown or repeated columns) is refused before anything is written, and the command \
exits with status 1.",
        after_help = "Examples:\n  ferry import contacts students.csv --institution state-u\n\n\
A minimal file:\n  first_name,last_name,phone,email,crm_id\n  Ana,Lopez,(617) 555-0101,ana@example.edu,0035e00000A1b2C"
    )]
    Contacts {
        /// The CSV file (UTF-8, comma-separated, with a header row).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Slug of the institution to import into.
        #[arg(long, value_name = "SLUG")]
        institution: String,
        /// Exit with status 0 even when rows were skipped (they are still listed).
        #[arg(long)]
        allow_skipped: bool,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many contacts to create the first time.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub contacts: usize,
    /// How many messages to create the first time.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub messages: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time a CSV contact import against the sqlite3 shell's raw `.import` of the same file.
    #[command(
        long_about = "Time a CSV contact import against the sqlite3 shell's raw `.import` of the same file.\n\n\
Generates an N-row contacts CSV in a temporary directory, then in the same run times (1) the \
`sqlite3` command-line shell importing it into a bare table of a fresh database and (2) Ferry \
importing it, with validation and matching, into a fresh SQLite store, and prints rows per second \
for both and the ratio Ferry/raw. Needs the `sqlite3` command. Build with --release for \
meaningful figures. Ignores --database-url: both sides use fresh SQLite files.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench import\n  \
cargo run --release -p ferry -- bench import --rows 200000 --keep"
    )]
    Import {
        /// Number of contact rows to generate.
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        rows: u64,
        /// Keep the temporary directory (CSV file and both databases) and print its path.
        #[arg(long)]
        keep: bool,
    },

    /// Time an EAB Notes export to an SFTP server on loopback against `sqlite3 -csv` of the same rows.
    #[command(
        long_about = "Time an EAB Notes export to an SFTP server on loopback against `sqlite3 -csv` of \
the same rows.\n\n\
Creates a fresh SQLite store in a temporary directory with one institution, N/20 contacts with CRM \
IDs and N messages, and an EAB Notes export pointing at an OpenSSH sshd on 127.0.0.1 (Ferry's own \
test SFTP server if sshd is not installed; the output says which). Then, in the same run, times \
(1) the export, run once by a worker in a child process whose peak memory (VmHWM) is read at the \
end, and (2) the `sqlite3` shell writing the same messages joined with their contacts, in \
sequence order, as CSV to a file. Prints both times, the ratio Ferry/sqlite3 (goal <= 1.3), rows, \
bytes and Ferry's peak RSS (goal <= 64 MB). Needs the `sqlite3` command. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench export\n  \
cargo run --release -p ferry -- bench export --messages 5000000"
    )]
    Export {
        /// Number of messages to generate (and export).
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        messages: u64,
        /// Which SFTP server receives the file.
        #[arg(long, value_enum, default_value_t = BenchServer::Auto)]
        server: BenchServer,
        /// Keep the temporary directory (database, both files) and print its path.
        #[arg(long)]
        keep: bool,
    },

    /// Time uploading a file with Ferry's SFTP client against OpenSSH's `sftp`, to the same sshd.
    #[command(
        name = "sftp-upload",
        long_about = "Time uploading a file with Ferry's SFTP client against OpenSSH's `sftp`, to the same sshd.\n\n\
Starts one OpenSSH sshd on 127.0.0.1 (fails if sshd is not installed), writes a file of \
incompressible data in a temporary directory, and uploads it, taking turns, with Ferry's client, \
with `sftp` in batch mode and with `sftp -c aes256-gcm@openssh.com` (Ferry's preferred cipher), \
--runs times each. `put -f` makes `sftp` ask the server to fsync before it finishes, as Ferry \
does by default. Prints every upload's MB/s, the best of each and the ratio Ferry/OpenSSH \
(goal >= 1.5), and the ratio against `sftp` with the same cipher. Needs openssh-server and \
openssh-client. Build with --release.\n\n\
By default it does all this twice: with sshd writing to the disk (the temporary directory), whose \
write-back varies from run to run, and with sshd writing to /dev/shm, where the clients are what \
is measured. --dest picks one. On a disk, `put -f` flushes the whole file at the end, while \
Ferry's client asks for a flush every 64 MiB over a second channel as it goes.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench sftp-upload\n  \
cargo run --release -p ferry -- bench sftp-upload --size-mb 256 --runs 3 --dest memory"
    )]
    SftpUpload {
        /// Size of the file in MiB.
        #[arg(long, default_value_t = 1024, value_name = "MIB")]
        size_mb: u64,
        /// Uploads per client (alternating); the best of each is compared.
        #[arg(long, default_value_t = 2, value_name = "N")]
        runs: u32,
        /// Do not ask the server to fsync (Ferry's `fsync` option off, plain `put`).
        #[arg(long)]
        no_fsync: bool,
        /// Where sshd writes the uploads: the disk (the temporary directory), memory
        /// (/dev/shm, so that the server's disk is not measured), or both in turn.
        #[arg(long, value_enum, default_value_t = UploadDest::Both)]
        dest: UploadDest,
    },

    /// Time OpenSSH's `sftp` uploading into Ferry's own SFTP server against the same upload into sshd.
    #[command(
        name = "sftp-server",
        long_about = "Time OpenSSH's `sftp` uploading into Ferry's own SFTP server against the same upload into sshd.\n\n\
Writes a file of incompressible data in a temporary directory, starts Ferry's SFTP server in this \
process (a fresh SQLite store, one account, the vault in the temporary directory: every byte is \
encrypted with AES-256-GCM as it lands) and an OpenSSH sshd writing plain files to the same \
directory, then uploads the file with `sftp` in batch mode to each, taking turns, --runs times. \
Prints every upload's MB/s, the best of each, the ratio Ferry/sshd (goal >= 1.0) and the peak \
RSS of this process, which hosts Ferry's server (goal <= 128 MB). Needs openssh-server and \
openssh-client. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench sftp-server\n  \
cargo run --release -p ferry -- bench sftp-server --size-mb 256 --runs 3"
    )]
    SftpServer {
        /// Size of the file in MiB.
        #[arg(long, default_value_t = 1024, value_name = "MIB")]
        size_mb: u64,
        /// Uploads per server (alternating); the best of each is compared.
        #[arg(long, default_value_t = 2, value_name = "N")]
        runs: u32,
    },

    /// Time a contacts file uploaded over SFTP and ingested as a Bulk file run against `ferry import contacts` of it.
    #[command(
        name = "bulk-ingest",
        long_about = "Time a contacts file uploaded over SFTP and ingested as a Bulk file run against `ferry import contacts` of it.\n\n\
Writes a contacts file of --rows rows (CRM ID, names, phone, email) in a temporary directory and \
imports it into a fresh SQLite store with the contacts import (the baseline, what `ferry import \
contacts` does). Then starts Ferry's SFTP server with a second fresh store, a contacts template \
and a Bulk File Upload instance, uploads the file with OpenSSH `sftp` in batch mode and times \
from the client's close (sftp returning) to the finished report (the file's run ended). Prints \
both, and the ratio bulk/import (goal <= 1.2). Needs openssh-client. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench bulk-ingest\n  \
cargo run --release -p ferry -- bench bulk-ingest --rows 100000"
    )]
    BulkIngest {
        /// Rows of the contacts file.
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        rows: u64,
    },

    /// Time the initial outgoing HubSpot sync of N contacts against the floor HubSpot's rate limits set.
    #[command(
        long_about = "Time the initial outgoing HubSpot sync of N contacts against the floor HubSpot's rate limits set.\n\n\
Creates a fresh SQLite store in a temporary directory with N contacts (names, phones, emails) and \
starts the HubSpot emulator in this process on loopback, limited to 100 requests per rolling 10 s \
(a Free/Starter private app) and 5 searches per second, holding a third of the contacts with \
their email and a tenth with only their name and phone. Then a worker runs a new outgoing \
instance's first run (the backfill of every contact) with Ferry's default client limits. Prints \
the API calls by endpoint and per contact (goal <= 0.03), the wall time from queueing the run \
to its end, the floor the limits set for that many calls (the 10-second limit: the first 100 \
calls at once, each further 100 one window later, i.e. ceil(C/100 - 1) x 10 s; searches, which \
HubSpot exempts from it, ceil(S/5 - 1) x 1 s; the larger binds), the ratio wall/floor (goal <= \
1.1) and the 429s received (0), then checks that HubSpot has no duplicates and every contact \
holds the CRM ID of its HubSpot record. Also runs the same sync once without limits first, to \
show Ferry's own share of the time. Ignores --database-url: it uses a fresh SQLite store. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench hubspot\n  \
cargo run --release -p ferry -- bench hubspot --contacts 2000"
    )]
    Hubspot {
        /// Number of contacts to sync.
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        contacts: u64,
    },

    /// The Salesforce connector against the emulator: the first push of N contacts and an incremental pull.
    #[command(
        long_about = "The Salesforce connector against the in-process Salesforce emulator. (a) The first outgoing sync of --contacts contacts (a fresh SQLite store; a third of them in Salesforce already with their email): API calls per contact (goal <= 0.005, through Bulk API 2.0) and the wall time from queueing the run to its end, against the same Salesforce work done by a bare client alone (one Bulk API query of the keys, then inserts and updates in jobs of the same size, from precomputed rows); Ferry's own share of the wall time (goal <= 20 %). Checks that Salesforce holds one record per contact and that every contact holds its record's Id. (b) After a first full pull of --contacts records, an incremental pull of --changes records changed in Salesforce: API calls, wall time, and the same SOQL pages read alone. Bulk API jobs are polled every 20 ms on both sides. Ignores --database-url. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench salesforce\n  \
cargo run --release -p ferry -- bench salesforce --contacts 20000 --changes 2000"
    )]
    Salesforce {
        /// Contacts of the first push (and records of the pull).
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        contacts: u64,
        /// Records changed in Salesforce before the incremental pull.
        #[arg(long, default_value_t = 10_000, value_name = "M")]
        changes: u64,
    },

    /// Time 1,000 queued runs taken by 1, 2 and 4 worker processes on PostgreSQL.
    #[command(
        long_about = "Time 1,000 queued runs taken by 1, 2 and 4 worker processes on PostgreSQL.\n\n\
Starts a remote in this process (an HTTP server on loopback that answers each run's call after \
--latency-ms and counts the calls of every run). For 1, 2 and then 4 worker processes, it creates \
a fresh schema in the database, N integrations each with one queued run whose work is one call to \
the remote, and starts that many `ferry` worker processes (each with the default concurrency); it \
times from their start until every run has ended. Prints runs/s for each and the ratio to one \
worker (goal >= 3x at 4), and fails if a run failed, if the remote saw a run's work twice, or never. \
The schema is dropped afterwards. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench workers\n  \
cargo run --release -p ferry -- bench workers --runs 200 --database-url postgres://postgres@127.0.0.1:5432/postgres"
    )]
    Workers {
        /// Number of queued runs (one per integration).
        #[arg(long, default_value_t = 1_000, value_name = "N")]
        runs: u64,
        /// How long the remote takes to answer each run's call.
        #[arg(long, default_value_t = 200, value_name = "MS")]
        latency_ms: u64,
        /// The PostgreSQL database a fresh schema is made in.
        #[arg(
            long,
            default_value = "postgres://postgres@127.0.0.1:5432/postgres",
            value_name = "URL"
        )]
        database_url: String,
    },

    /// Time single-contact API writes and reads at 32 connections, alone and during a 1,000,000-row import.
    #[command(
        name = "api-under-import",
        long_about = "Time single-contact API writes and reads at 32 connections, alone and during a 1,000,000-row import.\n\n\
Creates a fresh SQLite store in a temporary directory with 10,000 contacts and serves Ferry's API \
on loopback in this process. --clients connections (32) each PATCH a contact's first name, then GET \
it, in turn: first for --seconds on their own, then while N more rows are imported into the same \
store through the CSV import (as `ferry import contacts` or the API's import would). Prints the \
p50 and p99 of writes and reads in both phases (goal: p99 of writes during the import <= 250 ms). \
Ignores --database-url. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench api-under-import\n  \
cargo run --release -p ferry -- bench api-under-import --rows 200000 --seconds 5"
    )]
    ApiUnderImport {
        /// Rows of the import that runs under the load.
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        rows: u64,
        /// Concurrent HTTP connections.
        #[arg(long, default_value_t = 32, value_name = "N")]
        clients: usize,
        /// How long the baseline load runs on its own.
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        seconds: u64,
    },

    /// Internal: a worker process of `bench workers`, until killed.
    #[command(name = "workers-child", hide = true)]
    WorkersChild {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        remote: String,
    },

    /// The EveryAction connector against the emulator: the nightly pull and the opt-in push.
    #[command(
        long_about = "The EveryAction connector against the in-process emulator. (a) A nightly pull of --records changed records (US mobiles, opted in, with email and address), timed from the run's start to the last contact written, against Ferry's CSV import of the same rows into a fresh store in the same run: records/s and the ratio (goal >= 0.8). (b) A push of --changes opt-in/opt-out changes of linked contacts (half each way) with the emulator limited to --rate-limit requests per second (VAN's \"High\" key profile: 200): API calls per change (goal <= 1.05), the wall time against the floor the limit sets, calls/limit - 1 seconds (goal <= 1.1), the 429s received, and a check that every EveryAction record has Ferry's status on its one phone. Ignores --database-url: it uses fresh SQLite stores. Build with --release.",
        after_help = "Examples:\n  cargo run --release -p ferry -- bench everyaction\n  \
cargo run --release -p ferry -- bench everyaction --records 10000 --changes 2000 --rate-limit 15"
    )]
    Everyaction {
        /// Changed records the nightly pull brings in.
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        records: u64,
        /// Opt-in/opt-out changes the push sends.
        #[arg(long, default_value_t = 10_000, value_name = "M")]
        changes: u64,
        /// The emulator's requests per second during the push.
        #[arg(long, default_value_t = 200, value_name = "R")]
        rate_limit: u32,
    },

    /// Internal: the export half of `bench export`, run in a child process so that its memory
    /// is measured alone.
    #[command(name = "export-run", hide = true)]
    ExportRun {
        /// The store's directory (holding ferry.db).
        #[arg(long, value_name = "DIR")]
        store_dir: PathBuf,
        #[arg(long)]
        institution_id: i64,
        #[arg(long)]
        integration_id: i64,
        #[arg(long)]
        public_url: String,
    },
}

/// The SFTP server `bench export` uploads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchServer {
    /// OpenSSH's sshd if installed, else Ferry's test server.
    Auto,
    /// OpenSSH's sshd (fail if it is not installed).
    Openssh,
    /// Ferry's own test SFTP server, in the benchmark's process.
    Ferry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}

/// Where `bench sftp-upload` has sshd write the uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UploadDest {
    /// The temporary directory (TMPDIR, usually on disk).
    Disk,
    /// /dev/shm, a memory file system.
    Memory,
    /// Disk, then memory.
    Both,
}
