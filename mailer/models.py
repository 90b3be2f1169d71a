# Email deliveries arrive with the mailer issue; the app exists so its place is fixed.
