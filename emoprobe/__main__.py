from emoprobe.cli.main import main

main()
