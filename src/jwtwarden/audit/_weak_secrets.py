"""The generator of ``data/weak_secrets.txt``, the built-in list of ``jwtwarden crack``.

Written for this project (no third-party list is copied): documentation placeholders and
framework defaults that end up in production, common passwords and their usual
decorations, keyboard walks, digit runs, and application or framework names with the
suffixes people give their JWT secrets. The file is generated, not edited::

    python -m jwtwarden.audit._weak_secrets > src/jwtwarden/audit/data/weak_secrets.txt

A test checks that the file is exactly this module's output, one secret per line, no
duplicates, in generation order (most likely first).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

__all__ = ["generate"]

# Placeholders from documentation, tutorials and generated project templates, and the
# values developers type when a framework asks for "a secret".
_PLACEHOLDERS = """
secret
your-256-bit-secret
your-384-bit-secret
your-512-bit-secret
a-string-secret-at-least-256-bits-long
your-secret-key
your_secret_key
your-secret
your_secret
yoursecret
yoursecretkey
your-jwt-secret
your_jwt_secret
your-jwt-secret-key
your_jwt_secret_key
YOUR_SECRET
YOUR_SECRET_KEY
YOUR_JWT_SECRET
your-secret-here
your_secret_here
secret-key-goes-here
put-your-secret-here
insert-secret-here
replace-me
replace_me
replaceme
REPLACE_ME
change-me
change_me
changeme
ChangeMe
CHANGEME
CHANGE_ME
changeit
change-this
change_this
changethis
change-this-secret
change_this_secret
please-change-me
pleasechangeme
todo
TODO
fixme
FIXME
default
defaultsecret
default-secret
default_secret
secretkey
secret-key
secret_key
SECRET_KEY
SecretKey
secretKey
SECRET
Secret
jwt
JWT
jwtsecret
jwt-secret
jwt_secret
JWT_SECRET
JwtSecret
jwtSecret
jwt-secret-key
jwt_secret_key
JWT_SECRET_KEY
jwtSecretKey
jwtkey
jwt-key
jwt_key
JWT_KEY
jwt-token-secret
jwt_token_secret
token-secret
token_secret
tokensecret
TOKEN_SECRET
mysecret
my-secret
my_secret
MySecret
mySecret
mysecretkey
my-secret-key
my_secret_key
mySecretKey
MySecretKey
my-jwt-secret
my_jwt_secret
myjwtsecret
supersecret
super-secret
super_secret
SuperSecret
superSecret
supersecretkey
super-secret-key
super_secret_key
super secret key
super-secret-jwt-token-with-at-least-32-characters-long
topsecret
top-secret
top_secret
top secret
verysecret
very-secret
very_secret
verysecretkey
very-secret-key
notasecret
not-a-secret
not_a_secret
notsecret
nosecret
no-secret
insecure
insecure-secret
insecure_secret
unsafe
shhhhh
shhhhhared-secret
shh
shhh
shhhh
keyboard cat
keyboardcat
you-will-never-guess
hard to guess string
hard-to-guess-string
dev
development
devsecret
dev-secret
dev_secret
test
testing
testsecret
test-secret
test_secret
testkey
test-key
test_key
local
localsecret
local-secret
staging
production
prod
prod-secret
demo
example
sample
placeholder
dummy
dummysecret
dummy-secret
foo
bar
foobar
baz
qux
hello
helloworld
hello-world
hello_world
HelloWorld
abc
abc123
key
Key
KEY
privatekey
private-key
private_key
private
publickey
public
sharedsecret
shared-secret
shared_secret
signingkey
signing-key
signing_key
signing-secret
signing_secret
hmacsecret
hmac-secret
hmac_secret
hmackey
hmac-key
hmac_key
HS256
hs256
HS384
HS512
secret123
secret1234
secret12345
Secret123
Secret123!
secret!
secret1
secret12
s3cr3t
s3cret
secr3t
S3cr3t
5ecret
$ecret
secretsecret
secret-secret
secret_secret
secret secret
thisisasecret
this-is-a-secret
this_is_a_secret
ThisIsASecret
thisismysecret
this-is-my-secret
thisisthesecret
thisissecret
itsasecret
its-a-secret
mysupersecret
my-super-secret
mysupersecretkey
my-super-secret-key
my_super_secret_key
mysecretpassword
mysecretjwt
myverysecretkey
my-very-secret-key
averysecretkey
a-very-secret-key
somesecret
some-secret
some_secret
some-secret-key
somesecretkey
anothersecret
another-secret
randomsecret
random-secret
random_secret
randomstring
random-string
asecret
a-secret
thesecret
the-secret
secretpassword
secret-password
secret_password
password
Password
PASSWORD
passw0rd
P@ssw0rd
p@ssw0rd
P@ssword
admin
Admin
ADMIN
admin123
administrator
root
toor
qwerty
letmein
welcome
guest
user
login
access
auth
authsecret
auth-secret
auth_secret
authkey
auth-key
auth_key
AUTH_SECRET
apisecret
api-secret
api_secret
API_SECRET
apikey
api-key
api_key
API_KEY
appsecret
app-secret
app_secret
APP_SECRET
appkey
app-key
app_key
APP_KEY
sessionsecret
session-secret
session_secret
SESSION_SECRET
cookiesecret
cookie-secret
cookie_secret
COOKIE_SECRET
accesstokensecret
access-token-secret
access_token_secret
ACCESS_TOKEN_SECRET
refreshtokensecret
refresh-token-secret
refresh_token_secret
REFRESH_TOKEN_SECRET
access_secret
refresh_secret
ACCESS_SECRET
REFRESH_SECRET
secret_key_base
SECRET_KEY_BASE
nextauth-secret
NEXTAUTH_SECRET
django-insecure
django-insecure-secret-key
flask-secret
flask_secret
fastapi-secret
express-secret
node-secret
rails-secret
spring-secret
laravel-secret
gin-secret
mySecretKeyForJwtTokenGenerationThatIsLongEnough
ThisIsMySecretKeyForJwtTokenGeneration
thisisaverylongsecretkeyforjwttokengeneration
my-32-character-ultra-secure-and-ultra-long-secret
my-secret-key-that-is-at-least-32-bytes-long
this-is-a-very-long-secret-key-for-jwt
a-very-long-secret-key-that-is-at-least-32-characters
replace-this-with-a-long-random-secret
change-this-to-a-long-random-string
CHANGE_THIS_TO_A_LONG_RANDOM_STRING
generate-a-long-random-secret
your-very-long-and-secure-secret-key
super-secret-key-that-nobody-knows
nobody-will-guess-this
nobodyknows
you-shall-not-pass
opensesame
open-sesame
correct horse battery staple
correcthorsebatterystaple
correct-horse-battery-staple
trustno1
iloveyou
"""

# Common passwords people also use as secrets. Typed here from general knowledge of
# password-reuse studies (the usual suspects), not copied from any list.
_PASSWORDS = """
123456 12345678 123456789 1234567890 12345 1234 123 111111 000000 123123 654321 666666
121212 112233 123321 7777777 888888 987654321 1q2w3e4r password1 password123 qwerty123
qwertyuiop abc123 abcd1234 iloveyou monkey dragon letmein football baseball basketball
soccer hockey master shadow sunshine princess welcome login starwars whatever freedom
trustno1 batman superman pokemon charlie michael jordan jennifer hunter hunter2 ranger
buster thomas tigger robert daniel andrew joshua george summer winter spring autumn
flower cookie cheese chocolate coffee butterfly computer internet hello123 zaq12wsx
mustang corvette ferrari harley killer secret666 matrix ninja mario zelda minecraft
google facebook twitter linkedin github gitlab amazon microsoft apple samsung orange
banana purple yellow silver golden diamond angel devil heaven liverpool chelsea arsenal
barcelona madrid london paris berlin tokyo newyork america canada london123 family
friends lovely loveme iloveu sweety honey baby babygirl blessed jesus forever maverick
phoenix tiger lion eagle falcon wolf shark dolphin panda kitten puppy doggy access14
passw0rd p4ssw0rd pa55word pa$$word test123 test1234 testtest guest123 user123 demo123
root123 admin1 admin12 admin1234 administrator1 changeme123 default123 temp temp123
temporary welcome1 welcome123 letmein123 qazwsx 1qaz2wsx asdf asdf1234 zxcvbnm
"""

_KEYBOARD = """
qwerty qwertz azerty qwertyui qwertyuiop asdf asdfg asdfgh asdfghjk asdfghjkl zxcv zxcvb
zxcvbn zxcvbnm qazwsx qazwsxedc 1qaz2wsx 1qaz2wsx3edc zaq12wsx zaq1zaq1 1q2w3e 1q2w3e4r
1q2w3e4r5t 1q2w3e4r5t6y q1w2e3r4 q1w2e3r4t5 !QAZ2wsx !QAZ@WSX 123qwe qwe123 123qweasd
qweasd qweasdzxc asdqwe123 poiuytrewq lkjhgfdsa mnbvcxz 0987654321 9876543210 147258369
159753 753951 147852 258456 741852963 qwerty1 qwerty12 Qwerty123 Qwerty123!
"""

_DEFAULT_PASSWORDS_CAPS = ("Password", "Welcome", "Admin", "Secret", "Changeme", "Letmein")

# Application words and frameworks that end up in secret names.
_NAMES = """
app api auth jwt token server backend service web site node express nest nestjs next
nextjs nuxt react vue angular svelte django flask fastapi spring springboot rails laravel
symfony gin fiber echo dotnet aspnet phoenix hapi koa strapi supabase firebase hasura
keycloak auth0 okta cognito parse meteor loopback feathers adonis sails directus payload
mern mean todo blog shop store admin dashboard portal gateway user users account
accounts identity login session mobile frontend myapp demo test dev local
"""

_SUFFIXES = (
    "secret", "-secret", "_secret", "secretkey", "-secret-key", "_secret_key", "-jwt-secret",
    "_jwt_secret", "jwtsecret", "-jwt", "_jwt", "-key", "_key", "key", "-token-secret",
    "_token_secret", "123", "2024", "2025", "-secret-2024", "-secret-2025",
)
_PREFIXES = ("my", "my-", "my_", "the-", "super-", "super_")
_YEARS = tuple(str(year) for year in range(2015, 2027))
_DECORATIONS = ("1", "12", "123", "1234", "!", "!!", "@123", "#1", "01", "69", "007", "*")


def _words(text: str) -> list[str]:
    return text.split()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def _variants(word: str) -> Iterator[str]:
    """The decorations people add to a word to satisfy a password rule."""
    capitalised = word[:1].upper() + word[1:]
    yield word
    yield capitalised
    yield word.upper()
    for suffix in _DECORATIONS:
        yield word + suffix
        yield capitalised + suffix
    for year in _YEARS:
        yield word + year
        yield capitalised + year


def _repeated(seed: str, length: int) -> str:
    return (seed * (length // len(seed) + 1))[:length]


def _candidates() -> Iterator[str]:
    yield from _lines(_PLACEHOLDERS)
    yield from _words(_KEYBOARD)
    for word in _words(_PASSWORDS):
        yield from _variants(word)
    for word in _DEFAULT_PASSWORDS_CAPS:
        for suffix in ("1", "123", "1!", "123!", "@123", "2024!", "2025!", "2026!"):
            yield word + suffix
    # Digit runs and one-character fills of the sizes HS256/384/512 secrets must have.
    for length in range(4, 13):
        yield "1234567890"[:length] if length <= 10 else "123456789012"[:length]
        for digit in "0123456789":
            yield digit * length
    for length in (16, 24, 32, 48, 64):
        for seed in (
            "a", "x", "0", "1", "A", "X", "secret", "password", "jwt", "key", "abc", "123",
            "0123456789", "1234567890", "abcdef", "abcdefghijklmnopqrstuvwxyz",
            "0123456789abcdef", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "qwertyuiop", "changeme",
            "secretkey", "mysecret", "supersecret",
        ):
            yield _repeated(seed, length)
    for name in _words(_NAMES):
        for suffix in _SUFFIXES:
            yield name + suffix
        upper = name.upper()
        for suffix in ("_SECRET", "_JWT_SECRET", "_SECRET_KEY", "_KEY", "_TOKEN_SECRET"):
            yield upper + suffix
        for prefix in _PREFIXES:
            yield f"{prefix}{name}-secret" if prefix.endswith("-") else f"{prefix}{name}secret"
    for word in ("secret", "jwtsecret", "jwt-secret", "jwt_secret", "mysecret", "supersecret",
                 "secretkey", "changeme", "password", "admin", "test", "dev"):  # fmt: skip
        for year in _YEARS:
            yield word + year
            yield f"{word}-{year}"
            yield f"{word}_{year}"


def _unique(items: Iterable[str]) -> list[str]:
    return [item for item in dict.fromkeys(items) if item and "\n" not in item]


def generate() -> list[str]:
    """The built-in weak secrets, most likely first, without duplicates or empty entries."""
    return _unique(_candidates())


def main() -> int:
    sys.stdout.write("".join(f"{secret}\n" for secret in generate()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
