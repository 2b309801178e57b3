"""Stand-in for the pip bootstrap script ansible-test would download.

ansible-test creates its sanity venvs without pip and fetches a get-pip
script from its own CI host, which this lab never contacts. tools/sanity
places this file in ansible-test's cache instead: it installs pip with the
interpreter's own ensurepip, then installs what ansible-test asked for from
the package index pip is configured for.
"""
import subprocess
import sys

subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
