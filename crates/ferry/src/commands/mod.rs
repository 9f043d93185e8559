//! One module per command; this one sets up logging and the runtime and dispatches.

mod admin;
mod emulate;
mod import;
mod integration;
mod migrate;
mod serve;
pub mod worker;

pub use admin::generate_password;
pub use import::progress_bar;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferry_store::{Institution, Store};

use crate::cli::{
    Cli, Command, ImportCommand, InstitutionCommand, IntegrationCommand, TokenCommand, UserCommand,
};
use crate::settings::Settings;

pub fn main(cli: Cli) -> ExitCode {
    if let Err(e) = crate::logging::init(cli.global.log_format, &cli.global.log_filter) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<import::RowsSkipped>() => {
            eprintln!("error: {e}");
            ExitCode::from(import::RowsSkipped::STATUS)
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, without repeating a cause that the message above already shows
/// (store errors include their source in their message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Bench(bench) = cli.command {
        return crate::bench::run(bench).await;
    }
    if let Command::Emulate(crate::cli::EmulateCommand::Hubspot { listen, token }) = cli.command {
        return emulate::hubspot(&listen, token).await;
    }
    if let Command::Emulate(crate::cli::EmulateCommand::Everyaction {
        listen,
        app_name,
        api_key,
        rate_limit,
    }) = cli.command
    {
        return emulate::everyaction(&listen, app_name, api_key, rate_limit).await;
    }
    if let Command::Emulate(crate::cli::EmulateCommand::Salesforce {
        listen,
        jwt_certificate,
        daily_limit,
        tls,
    }) = cli.command
    {
        return emulate::salesforce(&listen, jwt_certificate, daily_limit, tls).await;
    }
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Serve => serve::serve(&settings).await,
        Command::SftpServer => serve::sftp_server(&settings).await,
        Command::Worker(args) => worker::run(&settings, args.once).await,
        Command::Migrate => migrate::run(&settings).await,
        Command::Institution(InstitutionCommand::Create {
            slug,
            name,
            time_zone,
        }) => {
            cli_acting(admin::institution_create(
                &settings,
                &slug,
                &name,
                time_zone.as_deref(),
            ))
            .await
        }
        Command::Institution(InstitutionCommand::List) => admin::institution_list(&settings).await,
        Command::User(UserCommand::Create {
            institution,
            email,
            role,
        }) => {
            cli_acting(admin::user_create(
                &settings,
                &institution,
                &email,
                role.into(),
            ))
            .await
        }
        Command::Token(c) => cli_acting(token_command(&settings, c)).await,
        Command::Integration(c) => cli_acting(integration_command(&settings, c)).await,
        Command::Import(ImportCommand::Contacts {
            file,
            institution,
            allow_skipped,
        }) => {
            cli_acting(import::contacts(
                &settings,
                &file,
                &institution,
                allow_skipped,
            ))
            .await
        }
        Command::Demo(args) => crate::demo::run(&settings, &args).await,
        Command::Bench(_) | Command::Emulate(_) => unreachable!("handled above"),
    }
}

/// Runs an administrative command as the command line, for the audit log.
async fn cli_acting<T>(f: impl Future<Output = T>) -> T {
    ferry_store::audit::acting_as(ferry_store::Actor::cli(), f).await
}

async fn token_command(settings: &Settings, c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create {
            institution,
            role,
            name,
            expires_in_days,
        } => admin::token_create(settings, &institution, role.into(), &name, expires_in_days).await,
        TokenCommand::List { institution } => admin::token_list(settings, &institution).await,
        TokenCommand::Revoke { id, institution } => {
            admin::token_revoke(settings, &institution, id).await
        }
    }
}

async fn integration_command(settings: &Settings, c: IntegrationCommand) -> Result<()> {
    use IntegrationCommand as C;
    match c {
        C::Types => integration::types(settings),
        C::List { institution } => integration::list(settings, &institution).await,
        C::Show(r) => integration::show(settings, &r.institution, r.id).await,
        C::Create { institution, file } => integration::create(settings, &institution, &file).await,
        C::Update { target, file } => {
            integration::update(settings, &target.institution, target.id, &file).await
        }
        C::Enable(r) => integration::set_enabled(settings, &r.institution, r.id, true).await,
        C::Disable(r) => integration::set_enabled(settings, &r.institution, r.id, false).await,
        C::Delete { target, yes } => {
            integration::delete(settings, &target.institution, target.id, yes).await
        }
        C::Test(r) => integration::test(settings, &r.institution, r.id).await,
        C::Run(r) => integration::run_now(settings, &r.institution, r.id).await,
    }
}

/// The institution with `slug`, or an error that says how to create one.
pub async fn institution(store: &Store, slug: &str) -> Result<Institution> {
    match store
        .institution_by_slug(slug)
        .await
        .context("looking up the institution")?
    {
        Some(i) => Ok(i),
        None => bail!(
            "no institution with slug {slug:?}; see `ferry institution list`, or create it with \
             `ferry institution create --slug {slug} --name NAME`"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chains_do_not_repeat_themselves() {
        let inner = anyhow::anyhow!("unable to open database file");
        let e = inner
            .context("database error: unable to open database file")
            .context("cannot open the database");
        assert_eq!(
            super::error_chain(&e),
            "cannot open the database: database error: unable to open database file"
        );
    }
}
