-- What a console session shows its owner on the Account page, so that
-- they can tell their sign-ins apart: a short description of the client
-- (from its User-Agent, such as "Firefox on Linux"; at most 120
-- characters) and the client address serve vouched for at sign-in. Both
-- are NULL for sessions made before this and for clients that sent
-- nothing. (created_at is already kept.)

ALTER TABLE console_sessions ADD COLUMN client TEXT;
ALTER TABLE console_sessions ADD COLUMN client_address TEXT;
