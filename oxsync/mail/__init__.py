"""Mail: the IMAP gateway (helper `mail`) and the mail the server itself sends (outbound queue workers,
iMIP, reminders). Only the store touches the database; these modules call its public API."""
